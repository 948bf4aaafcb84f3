"""Browser sessions: cookie flags, rotation (no fixation), expiry, CSRF, log-out everywhere."""

from __future__ import annotations

from datetime import timedelta

from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from cityops.auth.models import Account, AuthSession
from cityops.auth.tokens import digest
from cityops.db import utcnow
from tests.conftest import bearer

ADMIN = "demo-admin"


def sign_in(client: TestClient, username: str, password: str) -> dict[str, object]:
    r = client.post("/api/v1/auth/login", json={"username": username, "password": password})
    assert r.status_code == 200, r.text
    return dict(r.json())


def test_cookie_flags(anon: TestClient, credentials: dict[str, str]) -> None:
    r = anon.post("/api/v1/auth/login", json={"username": ADMIN, "password": credentials[ADMIN]})
    cookie = r.headers["set-cookie"]
    assert cookie.startswith("cityops_session=")
    assert "HttpOnly" in cookie and "SameSite=lax" in cookie and "Path=/" in cookie
    assert "Secure" not in cookie  # only when configured


def test_secure_cookie_when_configured(app: FastAPI, credentials: dict[str, str]) -> None:
    app.state.settings = app.state.settings.model_copy(update={"cookie_secure": True})
    with TestClient(app, base_url="https://testserver") as c:
        r = c.post("/api/v1/auth/login", json={"username": ADMIN, "password": credentials[ADMIN]})
    assert "Secure" in r.headers["set-cookie"]


def _session_cookie(response: object) -> str:
    header = response.headers["set-cookie"]  # type: ignore[attr-defined]
    return str(header.split("cityops_session=", 1)[1].split(";", 1)[0])


def test_session_is_rotated_at_login_no_fixation(
    anon: TestClient, credentials: dict[str, str], session: Session
) -> None:
    login = {"username": ADMIN, "password": credentials[ADMIN]}
    planted = "attacker-chosen-session-id"
    r = anon.post(
        "/api/v1/auth/login", json=login, headers={"Cookie": f"cityops_session={planted}"}
    )
    first = _session_cookie(r)
    assert first and first != planted
    # Nothing was ever stored under the planted identifier.
    assert (
        session.scalar(select(AuthSession).where(AuthSession.token_hash == digest(planted))) is None
    )

    # Logging in again with a live session replaces it: new identifier, old one revoked.
    r = anon.post("/api/v1/auth/login", json=login, headers={"Cookie": f"cityops_session={first}"})
    second = _session_cookie(r)
    assert second != first
    old = session.scalar(select(AuthSession).where(AuthSession.token_hash == digest(first)))
    assert old is not None and old.revoked_at is not None
    anon.cookies.clear()
    assert (
        anon.get("/api/v1/auth/me", headers={"Cookie": f"cityops_session={first}"}).status_code
        == 401
    )
    assert (
        anon.get("/api/v1/auth/me", headers={"Cookie": f"cityops_session={second}"}).status_code
        == 200
    )


def test_csrf_is_required_for_cookie_writes(anon: TestClient, credentials: dict[str, str]) -> None:
    body = sign_in(anon, ADMIN, credentials[ADMIN])
    new_key = {"name": "测试网关", "scopes": ["telemetry:write"]}
    assert anon.get("/api/v1/auth/me").status_code == 200  # reads need no token
    missing = anon.post("/api/v1/api-keys", json=new_key)
    assert (
        missing.status_code == 403 and missing.json()["error"]["fields"][0]["field"] == "csrf_token"
    )
    wrong = anon.post("/api/v1/api-keys", json=new_key, headers={"X-CSRF-Token": "guess"})
    assert wrong.status_code == 403
    ok = anon.post(
        "/api/v1/api-keys", json=new_key, headers={"X-CSRF-Token": str(body["csrf_token"])}
    )
    assert ok.status_code == 201


def test_csrf_token_in_a_form_post(anon: TestClient, credentials: dict[str, str]) -> None:
    body = sign_in(anon, ADMIN, credentials[ADMIN])
    bad = anon.post("/logout", data={"csrf_token": "nope"}, follow_redirects=False)
    assert bad.status_code == 403
    assert anon.get("/api/v1/auth/me").status_code == 200
    ok = anon.post("/logout", data={"csrf_token": body["csrf_token"]}, follow_redirects=False)
    assert ok.status_code == 303
    assert anon.get("/api/v1/auth/me").status_code == 401


def test_bearer_requests_need_no_csrf(client: TestClient) -> None:
    r = client.post("/api/v1/api-keys", json={"name": "网关", "scopes": ["telemetry:write"]})
    assert r.status_code == 201


def test_login_form_has_its_own_csrf(anon: TestClient, credentials: dict[str, str]) -> None:
    page = anon.get("/login")
    assert page.status_code == 200 and 'name="csrf_token"' in page.text
    token = page.text.split('name="csrf_token" value="')[1].split('"')[0]
    forged = TestClient(anon.app)  # a cross-site form post carries no login-CSRF cookie
    r = forged.post(
        "/login", data={"username": ADMIN, "password": credentials[ADMIN], "csrf_token": token}
    )
    assert r.status_code == 403 and "cityops_session" not in r.headers.get("set-cookie", "")
    ok = anon.post(
        "/login",
        data={
            "username": ADMIN,
            "password": credentials[ADMIN],
            "csrf_token": token,
            "next": "/#500154024",
        },
        follow_redirects=False,
    )
    assert ok.status_code == 303 and ok.headers["location"] == "/#500154024"


def test_open_redirects_are_refused(anon: TestClient, credentials: dict[str, str]) -> None:
    page = anon.get("/login")
    token = page.text.split('name="csrf_token" value="')[1].split('"')[0]
    r = anon.post(
        "/login",
        data={
            "username": ADMIN,
            "password": credentials[ADMIN],
            "csrf_token": token,
            "next": "//evil.example/x",
        },
        follow_redirects=False,
    )
    assert r.status_code == 303 and r.headers["location"] == "/"


def test_idle_and_absolute_expiry(
    anon: TestClient, credentials: dict[str, str], session: Session
) -> None:
    sign_in(anon, ADMIN, credentials[ADMIN])
    token = anon.cookies.get("cityops_session")
    assert token
    record = session.scalar(select(AuthSession).where(AuthSession.token_hash == digest(token)))
    assert record is not None
    now = utcnow()
    record.last_seen_at = now - timedelta(minutes=31)  # idle limit is 30 minutes
    session.flush()
    assert anon.get("/api/v1/auth/me").status_code == 401

    sign_in(anon, ADMIN, credentials[ADMIN])
    token = anon.cookies.get("cityops_session")
    assert token
    session.execute(
        update(AuthSession)
        .where(AuthSession.token_hash == digest(token))
        .values(expires_at=now - timedelta(seconds=1))
    )
    assert anon.get("/api/v1/auth/me").status_code == 401


def test_logout_everywhere_ends_sessions_and_tokens(
    app: FastAPI, credentials: dict[str, str]
) -> None:
    with TestClient(app) as browser, TestClient(app) as phone, TestClient(app) as laptop:
        sign_in(browser, ADMIN, credentials[ADMIN])
        body = sign_in(laptop, ADMIN, credentials[ADMIN])
        phone.headers.update(bearer(phone, ADMIN, credentials[ADMIN]))
        assert phone.get("/api/v1/auth/me").status_code == 200
        r = laptop.post(
            "/api/v1/auth/logout-everywhere", headers={"X-CSRF-Token": str(body["csrf_token"])}
        )
        assert r.status_code == 200 and r.json()["sessions"] >= 2 and r.json()["tokens"] >= 1
        for c in (browser, phone, laptop):
            assert c.get("/api/v1/auth/me").status_code == 401


def test_disabled_account_loses_access_at_once(
    client: TestClient, app: FastAPI, credentials: dict[str, str], session: Session
) -> None:
    with TestClient(app) as citizen:
        citizen.headers.update(bearer(citizen, "demo-citizen", credentials["demo-citizen"]))
        assert citizen.get("/api/v1/auth/me").status_code == 200
        account_id = session.scalar(select(Account.id).where(Account.username == "demo-citizen"))
        assert (
            client.patch(f"/api/v1/users/{account_id}", json={"active": False}).status_code == 200
        )
        assert citizen.get("/api/v1/auth/me").status_code == 401
        r = citizen.post(
            "/api/v1/auth/token",
            json={"username": "demo-citizen", "password": credentials["demo-citizen"]},
        )
        assert r.status_code == 401 and "disabled" in r.json()["error"]["message"]
