"""The risk point page of the workbench in Debian's Chromium: a slope whose monitor accelerates
and whose rain gauge passes both thresholds gets its four analysis charts drawn (each an image
with a name and a text summary beside it), in Chinese and in English."""

from __future__ import annotations

import math
import re
from datetime import timedelta

import pytest
import requests
from playwright.sync_api import Page, expect

from cityops.db import utcnow
from tests.web.conftest import LiveServer, shot, sign_in

pytestmark = pytest.mark.browser


def _slope(live_url: str, admin: dict[str, str], key: str) -> str:
    """A slope in the live server's district: a GNSS station creeping for three weeks, then
    accelerating, and a rain gauge through a two-day storm."""
    from cityops.telemetry.service import default_types

    def call(method: str, path: str, **kw: object) -> requests.Response:
        r = requests.request(method, live_url + path, timeout=30, **kw)  # type: ignore[arg-type]
        assert r.ok, r.text
        return r

    grid = "500154024003001"
    lon, lat = call("GET", f"/api/v1/regions/{grid}", headers=admin).json()["center"]
    call("PUT", "/api/v1/device-types", json={"types": default_types()}, headers=admin)
    for code, kind in (("WBP-GNSS-1", "gnss"), ("WBP-RAIN-1", "rain")):
        call(
            "POST",
            "/api/v1/devices",
            json={"code": code, "type": kind, "name": f"试验坡 {kind}", "lat": lat, "lon": lon},
            headers=admin,
        )
    ring = [[lon - 0.001, lat - 0.001], [lon + 0.001, lat - 0.001], [lon + 0.001, lat + 0.001]]
    call(
        "POST",
        "/api/v1/risk-points",
        json={
            "code": "WBP-SLOPE",
            "name": "试验坡滑坡",
            "lat": lat,
            "lon": lon,
            "zone": {"type": "Polygon", "coordinates": [[*ring, [lon - 0.001, lat + 0.001]]]},
            "monitors": [{"device": "WBP-GNSS-1", "v_uniform": 0.3}, {"device": "WBP-RAIN-1"}],
            "settings": {"step_h": 6},  # watched closely: the storm's days in 6-hour steps
        },
        headers=admin,
    )
    now = utcnow().replace(minute=0, second=0, microsecond=0)
    start = now - timedelta(days=24)
    readings = []
    for h in range(24 * 24):
        at = start + timedelta(hours=h)
        days = h / 24
        # Steady creep, then accelerating over the last four days (about 1/(t_f − t)).
        s = 0.3 * days + (8 * -math.log(1 - (days - 20) / 4.3) if days > 20 else 0.0)
        ts = int(at.timestamp() * 1000)
        readings.append({"device": "WBP-GNSS-1", "metric": "disp_mm", "ts": ts, "value": s})
        rain = 6.0 if days > 22 else 0.0
        readings.append({"device": "WBP-RAIN-1", "metric": "rain_mm", "ts": ts, "value": rain})
    call("POST", "/api/v1/telemetry", json=readings, headers={"X-API-Key": key})
    return "WBP-SLOPE"


def test_risk_point_charts_in_chromium(live: LiveServer, page: Page) -> None:
    token = requests.post(
        f"{live.url}/api/v1/auth/token",
        json={"username": "demo-admin", "password": live.credentials["demo-admin"]},
        timeout=10,
    ).json()["access_token"]
    code = _slope(live.url, {"Authorization": f"Bearer {token}"}, live.credentials["(API key)"])

    sign_in(page, live, "demo-commander", f"/workbench/risk-points/{code}")
    expect(page.locator("#analysis")).to_have_attribute("data-ready", "true", timeout=15_000)
    for chart in ("chart-displacement", "chart-angle", "chart-inverse", "chart-rain-id"):
        box = page.locator(f"#{chart}")
        expect(box).to_have_attribute("role", "img")
        expect(box.locator("canvas")).to_have_count(1)
    expect(page.locator("#chart-inverse")).to_have_attribute("aria-label", re.compile("GNSS-1"))
    expect(page.locator("#sum-displacement")).to_contain_text("GNSS-1")
    expect(page.locator("#sum-inverse")).to_contain_text("R²")
    expect(page.locator("#sum-rain")).to_contain_text("Caine")
    expect(page.locator("#live-verdict")).to_contain_text("红色")  # never evaluated: live
    shot(page, "workbench-risk-point")
    page.locator("#rain-title").scroll_into_view_if_needed()
    shot(page, "workbench-risk-point-rain")
    page.goto(f"{live.url}/workbench/risk-points/{code}?lang=en")
    expect(page.locator("#analysis")).to_have_attribute("data-ready", "true", timeout=15_000)
    expect(page.locator("#sum-displacement")).to_contain_text("displacement")
    shot(page, "workbench-risk-point-en")
