"""The pocket command room's server side (no browser): sign-in redirects that come back to the
page, the manifest and service worker, the page's configuration, the session helper and the
list of cases waiting for the signed-in person. (tests/web/test_mobile_page.py drives the page.)"""

from __future__ import annotations

import json
import re
from datetime import timedelta
from urllib.parse import quote

from fastapi.testclient import TestClient
from sqlalchemy import select
from sqlalchemy.orm import Session

from cityops.catalog.models import Category
from cityops.db import utcnow
from cityops.events.models import Assignment, Case
from cityops.org.models import Unit

# The mobile router, until the app's router list names it (then this does nothing).

G1, G3 = "500154024003001", "500154024001001"  # demo-grid's grid; another village of 义和镇


def api_sign_in(client: TestClient, credentials: dict[str, str], username: str) -> str:
    """A cookie session, as the page has; returns its CSRF token."""
    r = client.post(
        "/api/v1/auth/login", json={"username": username, "password": credentials[username]}
    )
    assert r.status_code == 200, r.text
    return str(r.json()["csrf_token"])


def config(html: str) -> dict:
    found = re.search(r'<script type="application/json" id="m-config">(.*?)</script>', html)
    assert found, "the page carries its configuration"
    return dict(json.loads(found.group(1)))


def test_signed_out_pages_send_to_sign_in_and_back(
    anon: TestClient, credentials: dict[str, str]
) -> None:
    bare = anon.get("/m?lang=en", follow_redirects=False)
    assert bare.status_code == 307 and bare.headers["location"] == "/m/?lang=en"
    for path in ("/m/", "/m/tasks", "/m/report?lang=en", "/m/alerts"):
        r = anon.get(path, follow_redirects=False)
        assert r.status_code == 303, path
        assert r.headers["location"] == f"/login?next={quote(path)}"
    refused = anon.get("/m/api/session")
    assert refused.status_code == 401 and "请先登录" in refused.json()["error"]["message"]
    assert anon.get("/m/api/cases").status_code == 401

    # Signing in through the form lands on the page asked for (a session that expired too).
    form = anon.get("/login", params={"next": "/m/tasks"})
    token = re.search(r'name="csrf_token" value="([^"]+)"', form.text)
    assert token and 'name="next" value="/m/tasks"' in form.text
    r = anon.post(
        "/login",
        data={
            "username": "demo-grid",
            "password": credentials["demo-grid"],
            "csrf_token": token.group(1),
            "next": "/m/tasks",
        },
        follow_redirects=False,
    )
    assert r.status_code == 303 and r.headers["location"] == "/m/tasks"
    page = anon.get("/m/tasks")
    assert page.status_code == 200 and config(page.text)["view"] == "tasks"


def test_manifest_and_service_worker(anon: TestClient) -> None:
    m = anon.get("/m/manifest.webmanifest")
    assert m.status_code == 200
    assert m.headers["content-type"].startswith("application/manifest+json")
    manifest = m.json()
    assert manifest["name"] == "开州掌上指挥室" and manifest["lang"] == "zh-CN"
    assert manifest["start_url"] == "/m/" and manifest["scope"] == "/m/"
    assert manifest["display"] == "standalone"
    sizes = {i["sizes"]: i["src"] for i in manifest["icons"]}
    for size in ("192x192", "512x512"):
        icon = anon.get(sizes[size])
        assert icon.status_code == 200 and icon.headers["content-type"] == "image/png"
        assert icon.content[:8] == b"\x89PNG\r\n\x1a\n"
        assert f"{size.split('x')[0]}".encode() and len(icon.content) < 20_000
    assert anon.get("/m/manifest.webmanifest?lang=en").json()["lang"] == "en"

    sw = anon.get("/m/sw.js")
    assert sw.status_code == 200
    assert sw.headers["content-type"].startswith("text/javascript")
    assert sw.headers["cache-control"] == "no-cache"
    assert "__VERSION__" not in sw.text and "__SHELL__" not in sw.text
    shell = json.loads(re.search(r"const SHELL = (\[.*?\]);", sw.text).group(1))  # type: ignore[union-attr]
    assert "/static/m/app.js" in " ".join(shell)
    for url in shell:  # everything the worker installs is there
        assert anon.get(url).status_code == 200, url
    assert "/api/" in sw.text  # API calls are passed through, never cached


def test_the_page_for_a_grid_worker(anon: TestClient, credentials: dict[str, str]) -> None:
    csrf = api_sign_in(anon, credentials, "demo-grid")
    r = anon.get("/m/")
    assert r.status_code == 200 and 'lang="zh-CN"' in r.text
    assert r.headers["cache-control"] == "private, no-cache"
    assert 'rel="manifest"' in r.text and "echarts" not in r.text
    cfg = config(r.text)
    assert cfg["view"] == "home" and cfg["lang"] == "zh"
    assert cfg["grid"]["code"] == G1 and cfg["grid"]["lat"] and cfg["grid"]["lon"]
    assert cfg["can"]["report"] and cfg["can"]["evacuation"] and not cfg["can"]["decide"]
    assert cfg["strings"]["status_evacuated"] == "已撤离"
    assert f'value="{csrf}"' in r.text  # the page's writes carry the session's CSRF token

    english = anon.get("/m/report", params={"lang": "en"})
    cfg = config(english.text)
    assert 'lang="en"' in english.text and cfg["view"] == "report"
    assert cfg["strings"]["status_evacuated"] == "Evacuated"
    assert "Pocket Command Room" in english.text

    session = anon.get("/m/api/session")
    assert session.status_code == 200 and session.headers["cache-control"] == "no-store"
    assert session.json()["csrf_token"] == csrf


def test_the_page_for_a_commander(anon: TestClient, credentials: dict[str, str]) -> None:
    api_sign_in(anon, credentials, "demo-commander")
    cfg = config(anon.get("/m/alerts").text)
    assert cfg["view"] == "alerts" and cfg["grid"] is None
    assert cfg["can"]["decide"] and cfg["can"]["dispatch"] and cfg["can"]["ack"]


def test_cases_waiting_for_me(
    anon: TestClient, credentials: dict[str, str], session: Session
) -> None:
    now = utcnow()
    category = session.scalars(select(Category).where(Category.code == "GY02")).one()
    unit = session.scalars(select(Unit).where(Unit.code == "DEPT-08")).one()

    def case(code: str, region: str, state: str, level: str = "town", **kw: object) -> Case:
        c = Case(
            code=code,
            source="citizen",
            description=f"掌上指挥室测试 {code}",
            region_code=region,
            state=state,
            level=level,
            category_id=category.id,
            created_at=now,
            updated_at=now,
            **kw,
        )
        session.add(c)
        return c

    case("209901010000001", G1, "handled", current_unit_id=unit.id, overdue=True)
    case("209901010000002", G3, "handled", current_unit_id=unit.id)  # not my grid
    case("209901010000003", G1, "closed", current_unit_id=unit.id)
    sent = case(
        "209901010000004",
        G1,
        "dispatched",
        current_unit_id=unit.id,
        deadline_at=now + timedelta(hours=2),
    )
    case("209901010000005", "500154001001001", "registered", level="district")
    session.flush()
    session.add(Assignment(case_id=sent.id, unit_id=unit.id, role="lead", assigned_at=now))
    session.flush()

    api_sign_in(anon, credentials, "demo-grid")
    r = anon.get("/m/api/cases")
    assert r.status_code == 200 and r.headers["cache-control"] == "no-store"
    items = {i["code"]: i for i in r.json()["items"]}
    assert set(items) >= {"209901010000001"}
    assert not set(items) & {f"20990101000000{n}" for n in (2, 3, 4, 5)}
    mine = items["209901010000001"]
    assert mine["actions"] == ["verify_ok", "verify_fail"]
    assert mine["category_name"] == category.name and mine["overdue"] is True
    assert mine["version"] >= 1 and mine["unit_name"] == unit.name

    api_sign_in(anon, credentials, "demo-handler")  # DEPT-08: accepts what it was sent
    items = {i["code"]: i for i in anon.get("/m/api/cases").json()["items"]}
    assert items["209901010000004"]["actions"] == ["accept", "return"]
    assert "209901010000001" not in items  # a unit does not verify its own work

    api_sign_in(anon, credentials, "demo-commander")  # the district dispatches
    items = {i["code"]: i for i in anon.get("/m/api/cases").json()["items"]}
    assert items["209901010000005"]["actions"] == ["dispatch"]
