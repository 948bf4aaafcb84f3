"""The cockpit page's server side: sign-in redirect, who may see it, bad regions, languages.
(The browser test, tests/web/test_cockpit_page.py, drives the page itself.)"""

from __future__ import annotations

import json
import re

from fastapi.testclient import TestClient

from tests.cockpit.conftest import G1, YIHE


def sign_in(client: TestClient, credentials: dict[str, str], username: str) -> None:
    r = client.post(
        "/api/v1/auth/login", json={"username": username, "password": credentials[username]}
    )
    assert r.status_code == 200, r.text


def config(html: str) -> dict:
    found = re.search(r'<script type="application/json" id="cockpit-config">(.*?)</script>', html)
    assert found, "the page carries its configuration"
    return dict(json.loads(found.group(1)))


def test_signed_out_goes_to_sign_in(anon: TestClient) -> None:
    r = anon.get("/cockpit", params={"region": YIHE}, follow_redirects=False)
    assert r.status_code == 303
    assert r.headers["location"] == f"/login?next=/cockpit%3Fregion%3D{YIHE}"


def test_page_for_the_town_and_in_english(anon: TestClient, credentials: dict[str, str]) -> None:
    sign_in(anon, credentials, "demo-town")
    r = anon.get("/cockpit")
    assert r.status_code == 200
    assert "开州区城市运行和治理中心 · 数字驾驶舱" in r.text and 'lang="zh-CN"' in r.text
    cfg = config(r.text)
    assert cfg["region"] == YIHE and cfg["home"] == YIHE and cfg["lang"] == "zh"
    assert cfg["strings"]["at_home"] == "仍在家 {n} 人" and "cases" in cfg["topics"]
    assert cfg["names"]["500154024"] == "义和镇" and cfg["layers"][0] == "cases"
    assert isinstance(cfg["feed_after"], int)

    english = anon.get("/cockpit", params={"region": f"{YIHE}003", "lang": "en"})
    assert english.status_code == 200 and 'lang="en"' in english.text
    assert "Digital Cockpit" in english.text
    cfg = config(english.text)
    assert cfg["region"] == f"{YIHE}003" and cfg["strings"]["at_home"] == "{n} still at home"

    for region in ("500154001", "500154", "12"):  # outside the town, or not a code
        refused = anon.get("/cockpit", params={"region": region, "lang": "zh"})
        assert refused.status_code == 404 and "不在您的辖区" in refused.text
        assert "cockpit-config" not in refused.text


def test_people_without_the_read_permissions_are_told(
    anon: TestClient, credentials: dict[str, str]
) -> None:
    sign_in(anon, credentials, "demo-citizen")
    r = anon.get("/cockpit", params={"region": G1})
    assert r.status_code == 403 and "没有查看数字驾驶舱的权限" in r.text
