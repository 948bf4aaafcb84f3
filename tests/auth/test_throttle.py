"""Failed log-ins slow down, then lock (429 + Retry-After); admins unlock; all audited."""

from __future__ import annotations

from datetime import timedelta

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from cityops.auth.models import Account, AuditEntry, LoginThrottle
from cityops.db import utcnow

USER = "demo-leader"


def attempt(c: TestClient, password: str, user: str = USER) -> object:
    return c.post("/api/v1/auth/token", json={"username": user, "password": password})


def step_past_delays(session: Session) -> None:
    """Move the last failure back in time instead of sleeping through the slow-down."""
    session.execute(update(LoginThrottle).values(last_failed_at=utcnow() - timedelta(minutes=5)))


def hold_the_delay(session: Session) -> None:
    """Stamp the last failure a minute ahead, so the first slow-down step (one second) is still
    running when the next attempt arrives, however slowly a loaded machine hashes passwords."""
    session.execute(update(LoginThrottle).values(last_failed_at=utcnow() + timedelta(minutes=1)))


def test_slow_down_then_lock_then_unlock(
    anon: TestClient, client: TestClient, credentials: dict[str, str], session: Session
) -> None:
    for _ in range(5):  # login_slowdown_after = 5
        assert attempt(anon, "wrong-password-1").status_code == 401  # type: ignore[attr-defined]
    hold_the_delay(session)
    slowed = attempt(anon, credentials[USER])
    assert slowed.status_code == 429  # type: ignore[attr-defined]
    assert int(slowed.headers["retry-after"]) >= 1  # type: ignore[attr-defined]

    for _ in range(5):  # up to login_lock_after = 10
        step_past_delays(session)
        assert attempt(anon, "wrong-password-1").status_code == 401  # type: ignore[attr-defined]
    step_past_delays(session)
    locked = attempt(anon, credentials[USER])  # even the right password
    assert locked.status_code == 429  # type: ignore[attr-defined]
    assert int(locked.headers["retry-after"]) > 25 * 60  # type: ignore[attr-defined]

    account_id = session.scalar(select(Account.id).where(Account.username == USER))
    assert client.post(f"/api/v1/users/{account_id}/unlock").json()["cleared"] == 1
    assert attempt(anon, credentials[USER]).status_code == 200  # type: ignore[attr-defined]

    actions = dict(
        session.execute(
            select(AuditEntry.action, func.count())
            .where(AuditEntry.entity == "accounts")
            .group_by(AuditEntry.action)
        ).all()
    )
    assert actions["login_failed"] == 10 and actions["unlock"] == 1 and actions["login"] >= 1


def test_success_resets_the_count(
    anon: TestClient, credentials: dict[str, str], session: Session
) -> None:
    for _ in range(4):
        attempt(anon, "wrong-password-1")
    assert attempt(anon, credentials[USER]).status_code == 200  # type: ignore[attr-defined]
    assert session.get(LoginThrottle, f"id:{USER}") is None


def test_unknown_names_are_throttled_the_same(anon: TestClient, session: Session) -> None:
    for _ in range(5):
        assert attempt(anon, "whatever-pass", user="nobody-here").status_code == 401  # type: ignore[attr-defined]
    hold_the_delay(session)
    assert attempt(anon, "whatever-pass", user="nobody-here").status_code == 429  # type: ignore[attr-defined]


def test_unknown_names_are_verified_at_the_configured_cost(
    anon: TestClient, app: FastAPI, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An unknown name costs what a wrong password costs — a verification at the hash cost
    the settings give the accounts — so the response time does not tell which names exist."""
    from argon2 import extract_parameters

    from cityops.auth import accounts

    verified: list[str] = []
    real = accounts.verify_password

    def spy(stored: str | None, password: str) -> bool:
        verified.append(stored or "")
        return real(stored, password)

    monkeypatch.setattr(accounts, "verify_password", spy)
    attempt(anon, "whatever-pass", user="nobody-here")
    attempt(anon, "wrong-password-1")
    settings = app.state.settings
    costs = {(p.memory_cost, p.time_cost) for p in (extract_parameters(h) for h in verified)}
    assert costs == {(settings.password_hash_memory_kib, settings.password_hash_time_cost)}


def test_per_address_limit(app: FastAPI, credentials: dict[str, str], session: Session) -> None:
    app.state.settings = app.state.settings.model_copy(
        update={"ip_slowdown_after": 3, "ip_lock_after": 4}
    )
    with TestClient(app) as c:
        for i in range(3):  # different names, same address
            assert attempt(c, "wrong-password-1", user=f"spray-{i}").status_code == 401  # type: ignore[attr-defined]
        step_past_delays(session)
        assert attempt(c, "wrong-password-1", user="spray-9").status_code == 401  # type: ignore[attr-defined]
        step_past_delays(session)
        assert attempt(c, credentials["demo-grid"], user="demo-grid").status_code == 429  # type: ignore[attr-defined]


def test_login_form_shows_the_wait(anon: TestClient, session: Session) -> None:
    page = anon.get("/login")
    token = page.text.split('name="csrf_token" value="')[1].split('"')[0]
    for _ in range(5):
        anon.post(
            "/login", data={"username": USER, "password": "wrong-password-1", "csrf_token": token}
        )
    hold_the_delay(session)
    r = anon.post(
        "/login", data={"username": USER, "password": "wrong-password-1", "csrf_token": token}
    )
    assert r.status_code == 429 and "retry-after" in r.headers and "秒后再试" in r.text
