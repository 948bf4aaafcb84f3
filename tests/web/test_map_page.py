from __future__ import annotations

import pytest
from playwright.sync_api import Page, expect

from tests.web.conftest import shot

pytestmark = pytest.mark.browser


def crumbs(page: Page) -> list[str]:
    return page.locator("#breadcrumb button").all_inner_texts()


def test_district_map_drills_down_and_back(page: Page, live_server: str) -> None:
    page.goto(live_server + "/")
    # Chinese first, even though the browser asks for English.
    expect(page.locator(".brand")).to_have_text("开州区数字化城市运行和治理中心")
    expect(page.locator("#region-name")).to_have_text("开州区（区）")
    expect(page.locator("#children li")).to_have_count(40)
    assert page.locator("#map canvas").count() >= 1
    expect(page.locator(".synthetic")).to_contain_text("合成")
    shot(page, "map-district")

    page.locator("#children button", has_text="义和镇").click()
    expect(page.locator("#region-name")).to_have_text("义和镇（镇街）")
    assert crumbs(page) == ["开州区", "义和镇"]
    expect(page.locator("#children li")).to_have_count(3)
    assert page.url.endswith("#500154024")
    shot(page, "map-town")

    page.locator("#children button").first.click()
    expect(page.locator("#breadcrumb li")).to_have_count(3)
    expect(page.locator("#children li")).to_have_count(2)  # grids of the village

    page.locator("#children button").first.click()
    expect(page.locator("#region-name")).to_contain_text("网格")
    expect(page.locator("#region-count")).to_have_text("0")

    page.locator("#breadcrumb button", has_text="义和镇").click()
    expect(page.locator("#region-name")).to_have_text("义和镇（镇街）")
    page.locator("#back").click()
    expect(page.locator("#region-name")).to_have_text("开州区（区）")


def test_clicking_the_map_drills_down(page: Page, live_server: str) -> None:
    page.goto(live_server + "/#500154024")
    expect(page.locator("#region-name")).to_have_text("义和镇（镇街）")
    page.wait_for_timeout(300)  # let ECharts finish its layout
    box = page.locator("#map").bounding_box()
    assert box is not None
    page.mouse.click(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
    expect(page.locator("#breadcrumb li")).to_have_count(3)


def test_english_is_available_and_remembered(page: Page, live_server: str) -> None:
    page.goto(live_server + "/?lang=en")
    expect(page.locator(".brand")).to_have_text("Kaizhou City Operations and Governance Center")
    expect(page.locator("#region-name")).to_have_text("开州区（District）")
    page.goto(live_server + "/")
    expect(page.locator(".brand")).to_have_text("Kaizhou City Operations and Governance Center")
    page.locator("#lang-switch").click()
    expect(page.locator(".brand")).to_have_text("开州区数字化城市运行和治理中心")


def test_phone_layout(browser: object, live_server: str) -> None:
    context = browser.new_context(viewport={"width": 390, "height": 844}, is_mobile=True)  # type: ignore[attr-defined]
    page = context.new_page()
    page.goto(live_server + "/")
    expect(page.locator("#children li")).to_have_count(40)
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= 390, "no sideways scrolling on a phone"
    shot(page, "map-phone")
    context.close()
