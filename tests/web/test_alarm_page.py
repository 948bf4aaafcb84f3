"""An alarm's page and its device's in Debian's Chromium: a hydrant whose pressure sinks below
its rule's line raises an alarm through the HTTP API; the duty officer's page draws the sensor
curve with the rule's lines (an image with a name and a summary in words), in Chinese and in
English, and acknowledges the alarm from the same page; the device list shows it online with
its newest value, and its page draws its last day."""

from __future__ import annotations

import pytest
import requests
from playwright.sync_api import Browser, Locator, Page, expect

from cityops.db import utcnow
from tests.web.conftest import LiveServer, shot, sign_in

pytestmark = pytest.mark.browser
GRID = "500154024003001"


def _sinking_hydrant(live: LiveServer) -> int:
    """A hydrant's pressure sinking for two hours, then below the rule's line; the alarm's id."""
    from cityops.telemetry.service import default_types

    token = requests.post(
        f"{live.url}/api/v1/auth/token",
        json={"username": "demo-admin", "password": live.credentials["demo-admin"]},
        timeout=10,
    ).json()["access_token"]
    admin = {"Authorization": f"Bearer {token}"}

    def call(method: str, path: str, **kw: object) -> requests.Response:
        r = requests.request(method, live.url + path, timeout=30, **kw)  # type: ignore[arg-type]
        assert r.ok, r.text
        return r

    lon, lat = call("GET", f"/api/v1/regions/{GRID}", headers=admin).json()["center"]
    call("PUT", "/api/v1/device-types", json={"types": default_types()}, headers=admin)
    call(
        "POST",
        "/api/v1/devices",
        json={
            "code": "WBA-HYD-1",
            "type": "hydrant",
            "name": "滨湖路消火栓",
            "lat": lat,
            "lon": lon,
        },
        headers=admin,
    )
    call(
        "POST",
        "/api/v1/alarm-rules",
        json={
            "code": "wba-low-pressure",
            "name": "消火栓管网低压",
            "kind": "threshold",
            "scope": "device",
            "scope_value": "WBA-HYD-1",
            "metric": "pressure_mpa",
            "params": {"op": "below", "value": 0.1, "clear": 0.14},
            "severity": "major",
        },
        headers=admin,
    )
    start = int(utcnow().timestamp() * 1000) - 125 * 60_000
    readings = [
        {
            "device": "WBA-HYD-1",
            "metric": "pressure_mpa",
            "ts": start + i * 60_000,
            "value": round(0.32 - i * 0.0018 + 0.01 * (i % 3), 4),
        }
        for i in range(120)
    ] + [
        {"device": "WBA-HYD-1", "metric": "pressure_mpa", "ts": start + 121 * 60_000, "value": 0.06}
    ]
    result = call(
        "POST",
        "/api/v1/telemetry",
        json=readings,
        headers={"X-API-Key": live.credentials["(API key)"]},
    ).json()
    assert result["rejected_count"] == 0 and result["alarms"], result
    return int(result["alarms"][0])


def test_the_alarm_page_draws_the_sensor_curve(
    live: LiveServer, page: Page, browser: Browser
) -> None:
    alarm = _sinking_hydrant(live)
    errors: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.on("response", lambda r: errors.append(f"{r.status} {r.url}") if r.status >= 400 else None)
    sign_in(page, live, "demo-shift", f"/workbench/alarms/{alarm}")
    box = page.locator("#alarm-curve")
    expect(box).to_have_attribute("data-ready", "true", timeout=15_000)
    expect(box).to_have_attribute("role", "img")
    expect(box.locator("canvas")).to_have_count(1)
    expect(page.locator("#alarm-curve-summary")).to_contain_text("共 121 个读数")
    expect(page.locator("#alarm-curve-summary")).to_contain_text("最新 0.06 MPa")
    expect(page.locator("#alarm-curve-summary")).to_contain_text("报警线 0.1 MPa，解除线 0.14 MPa")
    page.locator("#curve-title").scroll_into_view_if_needed()
    shot(page, "workbench-alarm-curve")

    page.goto(f"{live.url}/workbench/alarms/{alarm}?lang=en")
    expect(page.locator("#alarm-curve")).to_have_attribute("data-ready", "true", timeout=15_000)
    expect(page.locator("#alarm-curve-summary")).to_contain_text("latest 0.06 MPa")
    expect(page.locator("#curve-title")).to_contain_text("Sensor curve")

    form = page.locator("#act-ack")
    if form.get_attribute("open") is None:
        form.locator("summary").click()
    form.locator("button[type=submit]").click()
    page.wait_for_load_state()
    expect(page.locator(".notice-ok")).to_be_visible()
    expect(page.locator("#alarm-curve")).to_have_attribute("data-ready", "true")

    # The device's own page, from the list: its curve, its open alarm.
    page.goto(f"{live.url}/workbench/devices?lang=zh")
    row = page.locator('tr[data-device="WBA-HYD-1"]')
    expect(row).to_contain_text("在线")
    expect(row).to_contain_text("0.06")
    shot(page, "workbench-devices")
    row.locator("a").click()
    page.wait_for_load_state()
    chart = page.locator("#curve-pressure_mpa")
    expect(chart).to_have_attribute("data-ready", "true", timeout=15_000)
    expect(chart.locator("canvas")).to_have_count(1)
    expect(page.locator("#alarms-title")).to_have_text("未关闭的告警")
    expect(page.locator("main")).to_contain_text("消火栓管网低压")
    shot(page, "workbench-device")

    page.goto(f"{live.url}/workbench/alarm-rules")
    expect(page.locator('tr[data-rule="wba-low-pressure"]')).to_contain_text(
        "pressure_mpa < 0.1，回到 ≥ 0.14 解除"
    )
    shot(page, "workbench-alarm-rules")
    assert errors == []

    phone = browser.new_context(viewport={"width": 390, "height": 844}, locale="zh-CN").new_page()
    sign_in(phone, live, "demo-shift", f"/workbench/alarms/{alarm}")
    expect(phone.locator("#alarm-curve")).to_have_attribute("data-ready", "true", timeout=15_000)
    assert phone.evaluate("document.documentElement.scrollWidth") <= 390  # one column
    chart = phone.locator("#alarm-curve").bounding_box()
    assert chart is not None and 300 <= chart["width"] <= 390
    phone.locator("#curve-title").scroll_into_view_if_needed()
    shot(phone, "workbench-alarm-curve-phone")

    # The list on a phone: rows stack, so the cells that do not say what they are carry
    # their column's head, and the condition and acknowledgement badges share a line.
    phone.goto(f"{live.url}/workbench/alarms")
    row = phone.locator(f'tr[data-alarm="{alarm}"]')
    expect(row).to_be_visible()
    assert _heads(row) == ["次数", "最近发生", "关联案件"]
    badges = [b["y"] for b in row.locator("td.inline").evaluate_all(_BOXES)]
    assert len(badges) == 2 and badges[0] == badges[1]
    shot(phone, "workbench-alarms-phone")
    phone.context.close()
    page.goto(f"{live.url}/workbench/alarms")  # on a wide screen the table has its heads
    assert _heads(page.locator(f'tr[data-alarm="{alarm}"]')) == ["", "", ""]


_BOXES = "cells => cells.map(c => c.getBoundingClientRect())"


def _heads(row: Locator) -> list[str]:
    """What each labelled cell of a row shows before its value (empty: nothing)."""
    shown = row.locator("td[data-label]").evaluate_all(
        "cells => cells.map(c => getComputedStyle(c, '::before').content)"
    )
    return [c.strip('"').replace("\u00a0", "").strip() if c != "none" else "" for c in shown]
