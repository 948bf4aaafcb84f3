"""Accounts: creation rules, password policy, normalisation, and bad input."""

from __future__ import annotations

from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from cityops.auth.models import Account
from cityops.auth.passwords import check_policy, hash_password, verify_password
from cityops.errors import InvalidInput
from tests.cliutil import invoke_cli

GOOD = {
    "name": "李四",
    "roles": ["dispatcher"],
    "region_code": "500154024",
    "unit_code": "TC-500154024",
    "username": "lisi",
    "password": "Taikang-slope-watch-9",
}


def count(session: Session) -> int:
    return session.scalar(select(func.count()).select_from(Account)) or 0


def refused(
    client: TestClient, session: Session, field: str, status: int = 422, **change: object
) -> None:
    before = count(session)
    r = client.post("/api/v1/users", json=GOOD | change)
    assert r.status_code == status, r.text
    assert field in [f["field"] for f in r.json()["error"].get("fields", [])], r.text
    assert count(session) == before, "nothing stored half-way"


def test_create_and_sign_in_by_username_or_mobile(client: TestClient, anon: TestClient) -> None:
    r = client.post("/api/v1/users", json=GOOD | {"mobile": "+86 139-1234-5678"})
    assert r.status_code == 201
    assert r.json()["mobile"] == "13912345678" and r.json()["roles"] == ["dispatcher"]
    for login in ("lisi", "LISI", "ｌｉｓｉ", "13912345678"):
        ok = anon.post("/api/v1/auth/token", json={"username": login, "password": GOOD["password"]})
        assert ok.status_code == 200, login


@pytest.mark.parametrize(
    ("field", "change"),
    [
        ("roles", {"roles": ["mayor"]}),
        ("roles", {"roles": ["device"]}),
        ("roles", {"roles": []}),
        ("username", {"username": "ab"}),
        ("username", {"username": "аdmin"}),  # Cyrillic а
        ("username", {"username": "li si"}),
        ("username", {"username": "<script>"}),
        ("username", {"username": "x" * 65}),
        ("password", {"password": "short"}),
        ("password", {"password": "lisi-password-1"}),  # contains the username
        ("password", {"password": "woaini1314"}),  # too common
        ("password", {"password": "x" * 257}),
        ("mobile", {"mobile": "12345"}),
        ("name", {"name": ""}),
        ("name", {"name": "名" * 51}),
        ("name", {"name": "张\u200b三"}),  # invisible character
        ("region_code", {"region_code": "500154999"}),
        ("region_code", {"region_code": "x"}),
        ("unit_code", {"unit_code": None}),
        ("code", {"unit_code": "NO-SUCH-UNIT"}),
    ],
)
def test_bad_input_is_refused_with_the_field_named(
    client: TestClient, session: Session, field: str, change: dict[str, object]
) -> None:
    status = 404 if field == "code" else 422
    refused(client, session, field, status, **change)


def test_look_alike_usernames_collide(client: TestClient, session: Session) -> None:
    assert client.post("/api/v1/users", json=GOOD).status_code == 201
    refused(
        client, session, "username", 409, username="ＬＩＳＩ", mobile=None
    )  # full-width, upper case


def test_html_and_sql_in_names_are_stored_as_text(client: TestClient) -> None:
    name = "<b>王</b>'; DROP TABLE people;--"
    r = client.post("/api/v1/users", json=GOOD | {"name": name[:50]})
    assert r.status_code == 201 and r.json()["name"] == name[:50]
    assert (
        client.get("/api/v1/regions", params={"level": "town"}).status_code == 200
    )  # table intact


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"username": "demo-admin"},
        {"username": "", "password": ""},
        {"username": "x" * 101, "password": "p"},
        {"username": ["demo-admin"], "password": "p"},
        "not an object",
    ],
)
def test_malformed_credentials(anon: TestClient, body: object) -> None:
    r = anon.post("/api/v1/auth/token", json=body)
    assert r.status_code == 422 and r.json()["error"]["code"] == "invalid_input"


def test_password_policy_and_hashing() -> None:
    check_policy("Kaizhou-hanfeng-lake-7", username="zhang")
    with pytest.raises(InvalidInput):
        check_policy("ZHANG-is-my-name-2026", username="zhang")
    stored = hash_password("Kaizhou-hanfeng-lake-7", memory_kib=1024, time_cost=1)
    assert stored.startswith("$argon2id$")
    assert verify_password(stored, "Kaizhou-hanfeng-lake-7")
    assert verify_password(stored, "Ｋaizhou-hanfeng-lake-7")  # NFKC: full-width K is K
    assert not verify_password(stored, "kaizhou-hanfeng-lake-7")
    assert not verify_password("not-a-hash", "x") and not verify_password(None, "x")


def test_changing_the_password(anon: TestClient, credentials: dict[str, str]) -> None:
    t = anon.post(
        "/api/v1/auth/token", json={"username": "demo-grid", "password": credentials["demo-grid"]}
    )
    headers = {"Authorization": f"Bearer {t.json()['access_token']}"}
    wrong = anon.post(
        "/api/v1/auth/password",
        headers=headers,
        json={"current_password": "nope", "new_password": "Grid-patrol-night-31"},
    )
    assert (
        wrong.status_code == 422
        and wrong.json()["error"]["fields"][0]["field"] == "current_password"
    )
    ok = anon.post(
        "/api/v1/auth/password",
        headers=headers,
        json={"current_password": credentials["demo-grid"], "new_password": "Grid-patrol-night-31"},
    )
    assert ok.status_code == 204
    again = anon.post(
        "/api/v1/auth/token", json={"username": "demo-grid", "password": "Grid-patrol-night-31"}
    )
    assert again.status_code == 200


def test_reset_gives_a_temporary_password(
    client: TestClient, anon: TestClient, session: Session
) -> None:
    account_id = session.scalar(select(Account.id).where(Account.username == "demo-inspector"))
    temporary = client.post(f"/api/v1/users/{account_id}/reset-password").json()[
        "temporary_password"
    ]
    r = anon.post("/api/v1/auth/token", json={"username": "demo-inspector", "password": temporary})
    assert r.status_code == 200
    me = anon.get(
        "/api/v1/auth/me", headers={"Authorization": f"Bearer {r.json()['access_token']}"}
    )
    assert me.json()["account"]["must_change_password"] is True


def test_cli_admin_has_no_default_password(tmp_db: str, tmp_path: Path) -> None:
    env = {"CITYOPS_DATABASE_URL": tmp_db, "CITYOPS_PASSWORD_HASH_MEMORY_KIB": "1024"}
    assert (
        invoke_cli(
            "demo-data", "--villages-per-town", "1", "--grids-per-village", "1", env=env
        ).returncode
        == 0
    )
    no_accounts = invoke_cli("users", "list", env=env)
    assert (
        no_accounts.returncode == 0 and "0 accounts" in no_accounts.stdout
    )  # only `demo` makes demo accounts
    weak = invoke_cli("users", "create-admin", "--password-stdin", env=env, stdin="123456\n")
    assert weak.returncode == 2 and "password" in weak.stderr
    ok = invoke_cli(
        "users",
        "create-admin",
        "--username",
        "root-admin",
        "--password-stdin",
        env=env,
        stdin="Correct-horse-battery-9\n",
    )
    assert ok.returncode == 0, ok.stderr
    listed = invoke_cli("users", "list", env=env)
    assert "root-admin" in listed.stdout and "admin" in listed.stdout
    reset = invoke_cli("users", "reset", "root-admin", env=env)
    assert reset.returncode == 0 and "temporary password" in reset.stdout
    assert invoke_cli("users", "disable", "nobody", env=env).returncode == 2
    key = invoke_cli("keys", "create", "网关", "--scope", "telemetry:write", env=env)
    assert key.returncode == 0 and "cok_" in key.stdout
    bad_key = invoke_cli("keys", "create", "网关", "--scope", "users:manage", env=env)
    assert bad_key.returncode == 2 and "scopes" in bad_key.stderr
