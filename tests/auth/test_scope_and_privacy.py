"""Region scope is enforced in queries; personal data is masked unless unmasking is allowed,
and every unmasking is audited."""

from __future__ import annotations

from collections.abc import Callable

from fastapi.testclient import TestClient
from sqlalchemy import select
from sqlalchemy.orm import Session

from cityops.auth.models import AuditEntry
from cityops.privacy import mask_mobile, mask_name

Login = Callable[[str], dict[str, str]]
YIHE = "500154024"


def test_town_dispatcher_sees_only_their_town(anon: TestClient, login: Login) -> None:
    town = login("demo-town")
    people = anon.get("/api/v1/people", headers=town, params={"limit": 1000}).json()
    assert people and all(p["region_code"].startswith(YIHE) for p in people)
    elsewhere = anon.get("/api/v1/people", headers=town, params={"region": "500154001"}).json()
    assert elsewhere == []
    district = anon.get(
        "/api/v1/people", headers=login("demo-dispatcher"), params={"limit": 1000}
    ).json()
    assert len(district) > len(people)


def test_scope_hides_existence(anon: TestClient, login: Login) -> None:
    town = login("demo-town")
    inside = anon.get(f"/api/v1/regions/{YIHE}003001/on-duty", headers=town)
    outside = anon.get("/api/v1/regions/500154001001001/on-duty", headers=town)
    missing = anon.get("/api/v1/regions/500154999001001/on-duty", headers=town)
    assert inside.status_code == 200
    assert outside.status_code == 404 and missing.status_code == 404
    assert outside.json()["error"]["code"] == missing.json()["error"]["code"]


def test_grid_worker_sees_only_their_grid(anon: TestClient, login: Login) -> None:
    grid = login("demo-grid")
    people = anon.get("/api/v1/people", headers=grid).json()
    assert {p["region_code"] for p in people} == {f"{YIHE}003001"}
    assert anon.get(f"/api/v1/regions/{YIHE}003002/on-duty", headers=grid).status_code == 404


def test_masked_by_default_for_everyone(anon: TestClient, login: Login) -> None:
    for user in ("demo-admin", "demo-leader", "demo-grid"):
        people = anon.get("/api/v1/people", headers=login(user), params={"limit": 50}).json()
        assert people and all(p["masked"] for p in people)
        assert all(p["mobile"] is None or p["mobile"][3:7] == "****" for p in people)


def test_unmask_needs_the_permission_and_is_audited(
    anon: TestClient, login: Login, session: Session
) -> None:
    refused = anon.get("/api/v1/people", headers=login("demo-leader"), params={"unmask": "true"})
    assert refused.status_code == 403
    shown = anon.get(
        "/api/v1/people",
        headers=login("demo-dispatcher"),
        params={"unmask": "true", "region": YIHE},
    ).json()
    assert shown and not any(p["masked"] for p in shown)
    assert all(p["mobile"] is None or "*" not in p["mobile"] for p in shown)
    entry = session.scalars(select(AuditEntry).where(AuditEntry.action == "unmask")).one()
    assert entry.summary["count"] == len(shown) and entry.actor_kind == "person"


def test_citizens_names_are_masked(anon: TestClient, login: Login) -> None:
    people = anon.get(
        "/api/v1/people", headers=login("demo-admin"), params={"role": "citizen"}
    ).json()
    assert people and all(p["name"].endswith("*") for p in people)


def test_masking_rules() -> None:
    assert (
        mask_name("张三") == "张*" and mask_name("欧阳娜娜") == "欧阳**" and mask_name("王") == "王"
    )
    assert mask_mobile("13812341234") == "138****1234" and mask_mobile(None) is None
    assert mask_mobile("12345") == "*****"


def test_users_admin_scope(
    client: TestClient, anon: TestClient, credentials: dict[str, str]
) -> None:
    """A town administrator manages accounts of their town only."""
    client.post(
        "/api/v1/users",
        json={
            "name": "镇管理员",
            "roles": ["admin"],
            "region_code": YIHE,
            "unit_code": f"TC-{YIHE}",
            "username": "yihe-admin",
            "password": "Yihe-valley-admin-2026",
        },
    )
    r = anon.post(
        "/api/v1/auth/token", json={"username": "yihe-admin", "password": "Yihe-valley-admin-2026"}
    )
    town_admin = {"Authorization": f"Bearer {r.json()['access_token']}"}
    listed = anon.get("/api/v1/users", headers=town_admin).json()
    assert {u["username"] for u in listed["items"]} >= {"yihe-admin", "demo-town", "demo-grid"}
    assert all(u["region_code"].startswith(YIHE) for u in listed["items"])
    district_admin_id = client.get("/api/v1/auth/me").json()["account"]["id"]
    assert anon.get(f"/api/v1/users/{district_admin_id}", headers=town_admin).status_code == 404
    outside = anon.post(
        "/api/v1/users",
        headers=town_admin,
        json={
            "name": "越权",
            "roles": ["dispatcher"],
            "region_code": "500154001",
            "unit_code": "TC-500154001",
            "username": "overreach",
        },
    )
    assert (
        outside.status_code == 422
        and outside.json()["error"]["fields"][0]["field"] == "region_code"
    )
