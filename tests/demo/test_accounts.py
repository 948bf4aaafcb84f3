from __future__ import annotations

import stat
from pathlib import Path

from fastapi.testclient import TestClient
from sqlalchemy.orm import Session

from cityops.config import Settings
from cityops.demo import accounts as demo_accounts
from cityops.org.roles import Role


def test_one_demo_account_per_role(anon: TestClient, credentials: dict[str, str]) -> None:
    roles = set()
    for demo in demo_accounts.DEMO_ACCOUNTS:
        r = anon.post(
            "/api/v1/auth/token",
            json={"username": demo.username, "password": credentials[demo.username]},
        )
        assert r.status_code == 200, demo.username
        me = anon.get(
            "/api/v1/auth/me", headers={"Authorization": f"Bearer {r.json()['access_token']}"}
        ).json()
        roles |= set(me["roles"])
    assert roles == {r.value for r in Role} - {Role.device.value}
    device = anon.get("/api/v1/auth/me", headers={"X-API-Key": credentials["(API key)"]}).json()
    assert device["roles"] == ["device"] and device["permissions"] == ["telemetry:write"]


def test_ensure_is_idempotent_and_credentials_file_is_private(
    session: Session, tmp_path: Path
) -> None:
    assert (
        demo_accounts.ensure(session, Settings(password_hash_memory_kib=1024)) is None
    )  # already there
    path = demo_accounts.write_credentials([("demo-x", "测试", "secret-1")], tmp_path / "demo.txt")
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert "demo-x\t测试\tsecret-1" in path.read_text(encoding="utf-8")
