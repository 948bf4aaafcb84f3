from __future__ import annotations

import pytest
from playwright.sync_api import Page, expect

from tests.web.conftest import LiveServer, shot, sign_in

pytestmark = pytest.mark.browser


def crumbs(page: Page) -> list[str]:
    return page.locator("#breadcrumb button").all_inner_texts()


def test_district_map_drills_down_and_back(signed_in: Page) -> None:
    page = signed_in
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


def test_clicking_the_map_drills_down(page: Page, live: LiveServer) -> None:
    sign_in(page, live, next_path="/%23500154024")
    page.goto(live.url + "/#500154024")
    expect(page.locator("#region-name")).to_have_text("义和镇（镇街）")
    page.wait_for_timeout(300)  # let ECharts finish its layout
    box = page.locator("#map").bounding_box()
    assert box is not None
    page.mouse.click(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
    expect(page.locator("#breadcrumb li")).to_have_count(3)


def test_english_is_available_and_remembered(signed_in: Page, live_server: str) -> None:
    page = signed_in
    page.goto(live_server + "/?lang=en")
    expect(page.locator(".brand")).to_have_text("Kaizhou City Operations and Governance Center")
    expect(page.locator("#region-name")).to_have_text("开州区（District）")
    page.goto(live_server + "/")
    expect(page.locator(".brand")).to_have_text("Kaizhou City Operations and Governance Center")
    page.locator("#lang-switch").click()
    expect(page.locator(".brand")).to_have_text("开州区数字化城市运行和治理中心")


def test_phone_layout(browser: object, live: LiveServer) -> None:
    context = browser.new_context(viewport={"width": 390, "height": 844}, is_mobile=True)  # type: ignore[attr-defined]
    page = context.new_page()
    page.goto(live.url + "/login")
    shot(page, "login-phone")
    sign_in(page, live)
    expect(page.locator("#children li")).to_have_count(40)
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= 390, "no sideways scrolling on a phone"
    shot(page, "map-phone")
    context.close()


def test_sign_in_errors_are_readable_and_sign_out_works(page: Page, live: LiveServer) -> None:
    page.goto(live.url + "/")
    expect(page).to_have_url(live.url + "/login?next=/")
    expect(page.locator(".demo")).to_contain_text("demo-admin")  # demo mode lists the accounts
    shot(page, "login")
    page.fill("#username", "demo-admin")
    page.fill("#password", "not the password")
    page.click("button[type=submit]")
    expect(page.locator(".error")).to_have_text("用户名或密码错误")
    expect(page.locator("#username")).to_have_value("demo-admin")

    page.fill("#password", live.credentials["demo-admin"])
    page.click("button[type=submit]")
    expect(page.locator("#region-name")).to_have_text("开州区（区）")
    expect(page.locator(".who")).not_to_be_empty()

    page.get_by_role("button", name="退出").click()
    expect(page).to_have_url(live.url + "/login")
    page.goto(live.url + "/")
    expect(page).to_have_url(live.url + "/login?next=/")
