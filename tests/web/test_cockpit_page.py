"""The digital cockpit in Debian's Chromium: figures and charts render, the map drills down
district → town by a click and back by the breadcrumb, a new case shows up live (ticker and
figures, no reload), English is available, and a phone gets a stacked page."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest
from playwright.sync_api import APIRequestContext, Browser, Page, expect

from tests.web import a11y
from tests.web.conftest import SCREENSHOTS, LiveServer, shot, sign_in

pytestmark = pytest.mark.browser
YIHE, GRID = "500154024", "500154024003001"


@pytest.fixture
def wall(browser: Browser) -> Iterator[Page]:
    """A 1920×1080 wall screen."""
    context = browser.new_context(viewport={"width": 1920, "height": 1080}, locale="en-US")
    page = context.new_page()
    yield page
    context.close()


def report(api: APIRequestContext, live: LiveServer, description: str) -> str:
    token = api.post(
        f"{live.url}/api/v1/auth/token",
        data={"username": "demo-admin", "password": live.credentials["demo-admin"]},
    ).json()["access_token"]
    r = api.post(
        f"{live.url}/api/v1/cases",
        data={"description": description, "region_code": GRID, "category": "GY02"},
        headers={"Authorization": f"Bearer {token}"},
    )
    assert r.ok, r.text()
    return str(r.json()["code"])


def on_map(page: Page, live: LiveServer, region: str) -> tuple[float, float]:
    """Where on the page the region's centre is drawn on the cockpit's map."""
    centre = page.request.get(f"{live.url}/api/v1/regions/{region}").json()["center"]
    x, y = page.evaluate(
        "c => echarts.getInstanceByDom(document.getElementById('map'))"
        ".convertToPixel({geoIndex: 0}, c)",
        centre,
    )
    box = page.locator("#map").bounding_box()
    assert box is not None
    return box["x"] + x, box["y"] + y


def number(page: Page, selector: str) -> int:
    expect(page.locator(selector)).to_have_text(re.compile(r"^\d[\d,]*$"))
    return int(page.locator(selector).inner_text().replace(",", ""))


def test_cockpit_drills_down_and_updates_live(wall: Page, live: LiveServer) -> None:
    page = wall
    for i in range(3):
        report(page.request, live, f"驾驶舱浏览器测试 井盖破损 {i}")
    sign_in(page, live, next_path="/cockpit")
    expect(page).to_have_url(f"{live.url}/cockpit?region=500154")  # the page names its place
    expect(page.locator(".ck-brand")).to_have_text("开州区城市运行和治理中心 · 数字驾驶舱")
    expect(page.locator("#breadcrumb li")).to_have_text(["开州区"])
    assert number(page, "#kpi-intake") >= 3
    assert number(page, "#kpi-open") >= 3
    for chart in ("#map", "#chart-sources", "#chart-categories", "#chart-trend"):
        assert page.locator(f"{chart} canvas").count() >= 1, chart
    expect(page.locator("#live-status")).not_to_have_attribute("data-mode", "off")
    page.wait_for_timeout(1000)  # let ECharts finish its entrance animation (1 s)
    shot(page, "cockpit-district")
    a11y.check(page)

    # Click the town on the map: the same view, scoped to it.
    page.mouse.click(*on_map(page, live, YIHE))
    expect(page.locator("#region-name")).to_have_text("义和镇")
    expect(page.locator("#breadcrumb li")).to_have_text(["开州区", "义和镇"])
    assert page.url.endswith(f"?region={YIHE}")
    intake = number(page, "#kpi-intake")
    assert intake >= 3  # the cases above are in this town

    # A new case appears without a reload: in the ticker and in the figures.
    code = report(page.request, live, "驾驶舱浏览器测试 实时更新")
    expect(page.locator("#ticker li").first).to_contain_text(code, timeout=15000)
    expect(page.locator("#kpi-intake")).to_have_text(str(intake + 1), timeout=5000)
    page.wait_for_timeout(300)
    shot(page, "cockpit-town")

    page.locator("#breadcrumb button", has_text="开州区").click()
    expect(page.locator("#region-name")).to_have_text("开州区")
    expect(page.locator("#breadcrumb li")).to_have_count(1)
    page.select_option("#drill", label="义和镇")  # the keyboard's way down
    expect(page.locator("#region-name")).to_have_text("义和镇")

    page.goto(f"{live.url}/cockpit?region={YIHE}&lang=en")
    expect(page.locator(".ck-brand")).to_have_text(
        "Kaizhou City Operations Center · Digital Cockpit"
    )
    expect(page.locator("#h-kpis")).to_have_text("Case handling")
    expect(page.locator(".kpi dt").first).to_have_text("Reported today")
    number(page, "#kpi-intake")
    page.wait_for_timeout(400)
    shot(page, "cockpit-english")
    page.locator("#lang-switch").click()
    expect(page.locator(".ck-brand")).to_have_text("开州区城市运行和治理中心 · 数字驾驶舱")


def test_a_point_on_the_map_opens_its_page(wall: Page, live: LiveServer) -> None:
    """A case on the map opens its workbench page in a tab of its own; the wall stays put."""
    report(wall.request, live, "驾驶舱浏览器测试 点开案件")  # at the grid's centre
    sign_in(wall, live, next_path=f"/cockpit?region={YIHE}")
    expect(wall.locator("#region-name")).to_have_text("义和镇")
    # The cases alone on the map: other tests put alarms and devices at this grid's centre too.
    for layer in wall.locator("input[name=layer]").all():
        value = layer.get_attribute("value")
        if value != "cases" and layer.is_checked():
            wall.locator(f"label.chip-{value}").click()  # the chip, as a person does
            expect(layer).not_to_be_checked()
    wall.wait_for_function(
        "() => echarts.getInstanceByDom(document.getElementById('map'))"
        ".getOption().series.some(s => s.kind === 'cases' && s.data.length)"
    )
    x, y = on_map(wall, live, GRID)
    with wall.expect_popup() as opened:
        wall.mouse.click(x, y)
    tab = opened.value
    expect(tab).to_have_url(re.compile(r"/workbench/cases/[\w-]+$"))
    expect(tab.locator("h1")).to_contain_text(re.compile(r"\w"))
    expect(wall.locator("#region-name")).to_have_text("义和镇")  # the wall kept its view
    tab.close()


def test_cockpit_stacks_on_a_phone(browser: Browser, live: LiveServer) -> None:
    context = browser.new_context(viewport={"width": 390, "height": 844}, is_mobile=True)
    page = context.new_page()
    sign_in(page, live, next_path=f"/cockpit?region={YIHE}")
    expect(page.locator("#region-name")).to_have_text("义和镇")
    number(page, "#kpi-open")
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= 390, "no sideways scrolling on a phone"
    map_box, kpi_box = page.locator("#map").bounding_box(), page.locator(".ck-kpis").bounding_box()
    assert map_box and kpi_box and kpi_box["y"] > map_box["y"], "stacked: the map first"
    page.wait_for_timeout(300)
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / "cockpit-phone.png"), full_page=True)
    context.close()
