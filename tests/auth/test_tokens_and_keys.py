"""Bearer tokens (expiry, refresh rotation, reuse detection, revocation) and API keys."""

from __future__ import annotations

from datetime import datetime, timedelta

from fastapi.testclient import TestClient
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from cityops.auth import apikeys
from cityops.auth.models import ApiKey, AuthToken
from cityops.auth.tokens import digest
from cityops.db import utcnow

CITIZEN = "demo-citizen"


def tokens(anon: TestClient, credentials: dict[str, str], user: str = CITIZEN) -> dict[str, str]:
    r = anon.post("/api/v1/auth/token", json={"username": user, "password": credentials[user]})
    assert r.status_code == 200
    body = r.json()
    assert body["token_type"] == "Bearer" and body["expires_in"] == 15 * 60
    return dict(body)


def auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def test_access_token_expires(
    anon: TestClient, credentials: dict[str, str], session: Session
) -> None:
    t = tokens(anon, credentials)
    assert anon.get("/api/v1/auth/me", headers=auth(t["access_token"])).status_code == 200
    session.execute(
        update(AuthToken)
        .where(AuthToken.token_hash == digest(t["access_token"]))
        .values(expires_at=utcnow() - timedelta(seconds=1))
    )
    r = anon.get("/api/v1/auth/me", headers=auth(t["access_token"]))
    assert r.status_code == 401 and r.headers["www-authenticate"].startswith("Bearer")


def test_refresh_rotates_and_reuse_revokes_the_family(
    anon: TestClient, credentials: dict[str, str]
) -> None:
    t1 = tokens(anon, credentials)
    r = anon.post("/api/v1/auth/refresh", json={"refresh_token": t1["refresh_token"]})
    assert r.status_code == 200
    t2 = r.json()
    assert t2["refresh_token"] != t1["refresh_token"]
    assert anon.get("/api/v1/auth/me", headers=auth(t2["access_token"])).status_code == 200
    assert anon.get("/api/v1/auth/me", headers=auth(t1["access_token"])).status_code == 401

    # The spent refresh token comes back: it leaked. Everything in the family stops working.
    replay = anon.post("/api/v1/auth/refresh", json={"refresh_token": t1["refresh_token"]})
    assert replay.status_code == 401
    assert anon.get("/api/v1/auth/me", headers=auth(t2["access_token"])).status_code == 401
    assert (
        anon.post("/api/v1/auth/refresh", json={"refresh_token": t2["refresh_token"]}).status_code
        == 401
    )


def test_logout_revokes_the_app_tokens(anon: TestClient, credentials: dict[str, str]) -> None:
    t = tokens(anon, credentials)
    assert anon.post("/api/v1/auth/logout", headers=auth(t["access_token"])).status_code == 204
    assert anon.get("/api/v1/auth/me", headers=auth(t["access_token"])).status_code == 401
    assert (
        anon.post("/api/v1/auth/refresh", json={"refresh_token": t["refresh_token"]}).status_code
        == 401
    )


def test_refresh_token_is_not_an_access_token(
    anon: TestClient, credentials: dict[str, str]
) -> None:
    t = tokens(anon, credentials)
    assert anon.get("/api/v1/auth/me", headers=auth(t["refresh_token"])).status_code == 401


def test_api_key_shown_once_stored_hashed_scoped_and_revocable(
    client: TestClient, anon: TestClient, session: Session
) -> None:
    created = client.post(
        "/api/v1/api-keys", json={"name": "Open311 客户端", "scopes": ["open311:post"]}
    )
    assert created.status_code == 201
    key = created.json()["key"]
    key_id = created.json()["id"]
    assert key.startswith("cok_")
    record = session.get(ApiKey, key_id)
    assert record is not None and key.split("_", 2)[2] not in record.secret_hash
    listed = client.get("/api/v1/api-keys").json()
    assert all("key" not in k for k in listed)

    # An open311 key may not read regions (scope), and is not a person.
    assert anon.get("/api/v1/regions", headers={"X-API-Key": key}).status_code == 403
    me = anon.get("/api/v1/auth/me", headers=auth(key))
    assert me.status_code == 200 and me.json()["kind"] == "api_key"
    assert me.json()["permissions"] == ["open311:post"]
    session.refresh(record)
    assert record.last_used_at is not None and record.last_used_ip

    wrong_secret = key[:-4] + ("AAAA" if not key.endswith("AAAA") else "BBBB")
    assert anon.get("/api/v1/auth/me", headers={"X-API-Key": wrong_secret}).status_code == 401

    assert client.post(f"/api/v1/api-keys/{key_id}/revoke").status_code == 200
    assert anon.get("/api/v1/auth/me", headers={"X-API-Key": key}).status_code == 401
    assert client.post(f"/api/v1/api-keys/{key_id}/revoke").status_code == 409


def test_a_key_use_is_recorded_once_a_minute_or_from_a_new_address(session: Session) -> None:
    """A gateway posting many times a second does not rewrite its key's row each time."""
    secret, record = apikeys.create_key(
        session, name="网关", scopes=["telemetry:write"], created_by=None
    )
    t0 = utcnow()

    def use(at: datetime, ip: str) -> tuple[datetime | None, str | None]:
        assert apikeys.key_principal(session, secret, at, ip) is not None
        session.refresh(record)
        return record.last_used_at, record.last_used_ip

    assert use(t0, "10.0.0.1") == (t0, "10.0.0.1")
    assert use(t0 + timedelta(seconds=30), "10.0.0.1") == (t0, "10.0.0.1")
    assert use(t0 + timedelta(seconds=40), "10.0.0.2") == (t0 + timedelta(seconds=40), "10.0.0.2")
    later = t0 + timedelta(seconds=101)
    assert use(later, "10.0.0.2") == (later, "10.0.0.2")
    # Recorded later (a reads-first route): the same rule, decided in the UPDATE.
    apikeys.record_use(session, record.id, later + timedelta(seconds=5), "10.0.0.2")
    session.refresh(record)
    assert record.last_used_at == later
    apikeys.record_use(session, record.id, later + timedelta(seconds=61), "10.0.0.2")
    session.refresh(record)
    assert record.last_used_at == later + timedelta(seconds=61)


def test_api_key_with_regions_scope_reads_regions(client: TestClient, anon: TestClient) -> None:
    key = client.post("/api/v1/api-keys", json={"name": "大屏", "scopes": ["regions:read"]}).json()[
        "key"
    ]
    assert anon.get("/api/v1/regions", headers={"X-API-Key": key}).status_code == 200
    assert anon.get("/api/v1/people", headers={"X-API-Key": key}).status_code == 403


def test_api_key_bad_input(client: TestClient) -> None:
    unknown = client.post("/api/v1/api-keys", json={"name": "x", "scopes": ["users:manage"]})
    assert unknown.status_code == 422 and unknown.json()["error"]["fields"][0]["field"] == "scopes"
    empty = client.post("/api/v1/api-keys", json={"name": "x", "scopes": []})
    assert empty.status_code == 422
    long_name = client.post(
        "/api/v1/api-keys", json={"name": "x" * 101, "scopes": ["open311:post"]}
    )
    assert long_name.status_code == 422


def test_expired_api_key(client: TestClient, anon: TestClient, session: Session) -> None:
    body = client.post("/api/v1/api-keys", json={"name": "临时", "scopes": ["regions:read"]}).json()
    session.execute(
        update(ApiKey).where(ApiKey.id == body["id"]).values(expires_at=utcnow() - timedelta(1))
    )
    assert anon.get("/api/v1/regions", headers={"X-API-Key": body["key"]}).status_code == 401
    assert session.scalar(select(ApiKey.revoked_at).where(ApiKey.id == body["id"])) is None
