"""The pocket command room (掌上指挥室, /m/) on a 390×844 phone in Debian's Chromium: a grid worker
reports online and offline (with a photo); back online the queue syncs and — even when the first
answer is lost and the report is sent again — exactly one case exists; a household status tapped
without signal syncs once; a commander confirms a warning; the manifest and the service worker
register and the app starts offline; English is available; the first load stays small."""

from __future__ import annotations

import re
import struct
import time
import uuid
import zlib
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import requests
from playwright.sync_api import Browser, BrowserContext, Page, Route, expect

from tests.web import a11y
from tests.web.conftest import LiveServer, shot, sign_in

# The mobile router, until the app's router list names it (then this does nothing).

pytestmark = pytest.mark.browser
G1 = "500154024003001"  # 太康村 grid 1: demo-grid's
PHONE = {"width": 390, "height": 844}
FIRST_LOAD_BUDGET = 500_000  # bytes transferred on a first visit (no map GeoJSON on this page)


def png(width: int = 48, height: int = 32) -> bytes:
    """A small striped PNG, as a phone camera would hand over (only smaller)."""
    raw = b"".join(
        b"\x00"
        + b"".join(bytes((200, 40 + y, 40) if x % 8 < 4 else (30, 90, 200)) for x in range(width))
        for y in range(height)
    )

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(raw))
        + chunk(b"IEND", b"")
    )


class Api:
    """The JSON API as a demo account (bearer token), for setting the scene and checking it."""

    def __init__(self, live: LiveServer, username: str) -> None:
        self.url = live.url
        r = requests.post(
            f"{live.url}/api/v1/auth/token",
            json={"username": username, "password": live.credentials[username]},
            timeout=10,
        )
        r.raise_for_status()
        self.headers = {"Authorization": f"Bearer {r.json()['access_token']}"}

    def get(self, path: str, **params: Any) -> Any:
        r = requests.get(self.url + path, params=params, headers=self.headers, timeout=10)
        assert r.ok, r.text
        return r.json()

    def post(self, path: str, body: dict[str, Any]) -> Any:
        r = requests.post(self.url + path, json=body, headers=self.headers, timeout=10)
        assert r.ok, r.text
        return r.json()


def square(lat: float, lon: float, half: float) -> dict[str, Any]:
    ring = [[lon - half, lat - half], [lon + half, lat - half], [lon + half, lat + half]]
    return {"type": "Polygon", "coordinates": [[*ring, [lon - half, lat + half], ring[0]]]}


def open_scene(live: LiveServer) -> dict[str, Any]:
    """In 太康村 grid 1: a risk point with three households under an issued red warning (the
    evacuation is open, demo-grid is the worker on duty) and a second point whose warning is
    only proposed (for the commander to confirm)."""
    api = Api(live, "demo-commander")
    lon, lat = api.get(f"/api/v1/regions/{G1}")["center"]
    tag = uuid.uuid4().hex[:6]
    shelter = f"M-SH-{tag}"
    api.post(
        "/api/v1/shelters",
        {"code": shelter, "name": "太康村村委会", "lat": lat + 0.01, "lon": lon, "capacity": 200},
    )
    households = []
    for i, (d_lat, d_lon, persons, phone) in enumerate(
        [(0.0002, 0.0002, 4, "13900001111"), (-0.0002, 0.0001, 2, ""), (0.0001, -0.0003, 3, "")]
    ):
        code = f"M-HH-{tag}-{i + 1}"
        api.post(
            "/api/v1/households",
            {
                "code": code,
                "head_name": ["张德明", "李秀英", "王建国"][i],
                "address": f"太康村6组{i + 1}号",
                "lat": lat + d_lat,
                "lon": lon + d_lon,
                "persons": persons,
                "phone": phone,
                "vulnerable": {"elderly": 2} if i == 0 else {},
            },
        )
        households.append(code)
    codes = {}
    for key, d_lat, level in (("issued", 0.0, "red"), ("proposed", 0.004, "orange")):
        point = f"M-RP-{tag}-{key}"
        api.post(
            "/api/v1/risk-points",
            {
                "code": point,
                "name": "老沟湾滑坡" if key == "issued" else "太康村后山不稳定斜坡",
                "hazard": "landslide" if key == "issued" else "unstable_slope",
                "lat": lat + d_lat,
                "lon": lon,
                "zone": square(lat + d_lat, lon, 0.0006 if key == "issued" else 0.0002),
                "shelters": [shelter],
            },
        )
        warning = api.post(
            "/api/v1/warnings", {"risk_point": point, "level": level, "reason": "位移加速"}
        )
        codes[key] = warning["code"]
    api.post(f"/api/v1/warnings/{codes['issued']}/confirm", {})
    api.post(f"/api/v1/warnings/{codes['issued']}/issue", {})
    return {
        "warnings": codes,
        "households": households,
        "lat": lat,
        "lon": lon,
        "handled": handled_case(live, tag),
    }


def handled_case(live: LiveServer, tag: str) -> str:
    """A hotline case in grid 1, fixed by a department and waiting to be verified on site."""
    call = Api(live, "demo-intake").post(
        "/api/v1/cases",
        {
            "description": f"村道旁垃圾堆积，已清运待核查（{tag}）",
            "source": "hotline",
            "category": "GY02",
            "region_code": G1,
        },
    )
    code = call["code"]
    dispatcher, handler = Api(live, "demo-dispatcher"), Api(live, "demo-handler")
    dispatcher.post(f"/api/v1/cases/{code}/actions/register", {"category": "GY02"})
    dispatcher.post(f"/api/v1/cases/{code}/actions/dispatch", {"unit": "DEPT-08"})
    handler.post(f"/api/v1/cases/{code}/actions/accept", {})
    handler.post(f"/api/v1/cases/{code}/actions/report_done", {"note": "已清运完毕"})
    return str(code)


@pytest.fixture(scope="module")
def scene(live: LiveServer) -> dict[str, Any]:
    return open_scene(live)


@pytest.fixture
def phone(browser: Browser, live: LiveServer, scene: dict[str, Any]) -> Iterator[BrowserContext]:
    context = browser.new_context(
        viewport=PHONE,
        is_mobile=True,
        has_touch=True,
        locale="zh-CN",
        geolocation={"latitude": scene["lat"], "longitude": scene["lon"], "accuracy": 12},
        permissions=["geolocation"],
    )
    yield context
    context.close()


def lose_first_answer(answers: list[dict[str, Any]]) -> Callable[[Route], None]:
    """A route handler: every request reaches the server, but the phone never hears the first
    answer (signal lost at the worst moment), so the queue must send the same item again."""

    def handle(route: Route) -> None:
        response = route.fetch()
        answers.append({"status": response.status, "body": response.json()})
        if len(answers) == 1:
            route.abort("internetdisconnected")
        else:
            route.fulfill(response=response)

    return handle


def wait_for(page: Page, condition: Callable[[], bool], seconds: float = 10) -> None:
    """Wait while Playwright keeps handling events (route handlers run in between)."""
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        page.wait_for_timeout(50)


def small_targets(page: Page) -> list[str]:
    """Visible controls smaller than 44 px in height (a thumb needs that much)."""
    return list(
        page.evaluate(
            """() => [...document.querySelectorAll(
                'button, a, select, textarea, input:not([type=checkbox]):not(.visually-hidden)')]
              .filter((el) => el.offsetParent !== null && !el.closest('[hidden]'))
              .filter((el) => el.getBoundingClientRect().height < 44)
              .map((el) => el.outerHTML.slice(0, 80))"""
        )
    )


def test_grid_worker_reports_offline_and_exactly_one_case_appears(
    phone: BrowserContext, live: LiveServer
) -> None:
    page = phone.new_page()
    sign_in(page, live, "demo-grid", next_path="/m/report")
    expect(page).to_have_url(f"{live.url}/m/report")  # back where the person was going
    expect(page.locator("#r-category optgroup").first).to_be_attached()
    expect(page.locator("#r-location")).to_contain_text("已定位")  # GPS allowed: located at once
    expect(page.locator("#r-location")).to_contain_text("太康村")
    tag = uuid.uuid4().hex[:6]

    # Online: reported at once.
    page.select_option("#r-category", "GY02")
    page.fill("#r-description", f"井盖破损，车辆经过有危险（在线 {tag}）")
    shot(page, "m-report")
    assert small_targets(page) == []
    a11y.check(page)
    page.click("#r-submit")
    expect(page.locator("#banner")).to_contain_text("已上报，案件编号")
    online_code = page.locator("#banner-text").inner_text().rsplit(" ", 1)[-1]

    # Offline: a photo (shrunk to JPEG in the page), the grid centre instead of GPS, queued.
    phone.set_offline(True)
    expect(page.locator("#net")).to_have_text("离线")
    page.select_option("#r-category", "GY04")
    description = f"路灯不亮，夜间村道漆黑（离线 {tag}）"
    page.fill("#r-description", description)
    page.set_input_files(
        "#r-photo", files=[{"name": "lamp.png", "mimeType": "image/png", "buffer": png()}]
    )
    expect(page.locator("#r-preview")).to_be_visible()
    page.click("#r-grid")
    expect(page.locator("#r-location")).to_contain_text("网格中心")
    shot(page, "m-report-offline-photo")
    page.click("#r-submit")
    expect(page.locator("#sync")).to_have_text("待同步 1")
    expect(page.locator("#banner")).to_contain_text("没有网络：上报已保存在本机")
    shot(page, "m-report-queued")
    page.click("#sync")
    expect(page.locator("#queue-list")).to_contain_text(description[:20])

    # Back online; the first answer is lost, so the same report (same key) goes out twice.
    answers: list[dict[str, Any]] = []
    uploads: list[dict[str, Any]] = []
    page.on(
        "response",
        lambda r: uploads.append(r.json()) if r.url.endswith("/api/v1/attachments") else None,
    )
    phone.route("**/api/v1/cases", lose_first_answer(answers))
    phone.set_offline(False)
    expect(page.locator("#net")).to_have_text("在线")
    wait_for(page, lambda: len(answers) >= 1)
    page.click("#sync-now")  # the person does not wait for the back-off
    wait_for(page, lambda: len(answers) >= 2)
    expect(page.locator("#sync")).to_be_hidden()
    expect(page.locator("#banner")).to_contain_text("已上报，案件编号")
    assert [a["status"] for a in answers] == [201, 200], "the retry returned the first case"
    assert answers[0]["body"]["code"] == answers[1]["body"]["code"]
    assert page.evaluate("CityOpsMobile.queue.flush(true)") == 0  # nothing left to send
    phone.unroute("**/api/v1/cases")

    admin = Api(live, "demo-admin")
    found = admin.get("/api/v1/cases", q=f"离线 {tag}")
    assert found["total"] == 1, "exactly one case, whatever the retries"
    case = found["items"][0]
    assert case["category"] == "GY04" and case["region_code"] == G1
    assert case["source"] == "grid_worker" and case["lat"] is None
    assert admin.get("/api/v1/cases", q=f"在线 {tag}")["items"][0]["code"] == online_code
    assert len(uploads) == 1, "the photo was uploaded once"
    photo = requests.get(
        f"{live.url}/api/v1/attachments/{uploads[0]['id']}", headers=admin.headers, timeout=10
    )
    assert photo.status_code == 200 and photo.headers["content-type"] == "image/jpeg"


def test_an_expired_session_keeps_the_report_and_comes_back_after_sign_in(
    phone: BrowserContext, live: LiveServer
) -> None:
    page = phone.new_page()
    sign_in(page, live, "demo-grid", next_path="/m/report")
    expect(page.locator("#r-category optgroup").first).to_be_attached()
    phone.clear_cookies()  # the session ends while the page stays open
    tag = uuid.uuid4().hex[:6]
    page.select_option("#r-category", "-")  # not sure: the intake desk classifies it
    page.fill("#r-description", f"河道漂浮物较多（会话过期 {tag}）")
    page.click("#r-grid")
    page.click("#r-submit")
    expect(page.locator("#banner")).to_contain_text("登录已过期。未发送的内容仍保存在本机")
    expect(page.locator("#sync")).to_have_text("待同步 1")
    shot(page, "m-session-expired")
    page.get_by_role("link", name="重新登录").click()
    expect(page).to_have_url(f"{live.url}/login?next=/m/report")
    page.fill("#username", "demo-grid")
    page.fill("#password", live.credentials["demo-grid"])
    page.click("button[type=submit]")
    expect(page).to_have_url(f"{live.url}/m/report")
    expect(page.locator("#banner")).to_contain_text("已上报，案件编号")  # sent on arrival
    expect(page.locator("#sync")).to_be_hidden()
    found = Api(live, "demo-admin").get("/api/v1/cases", q=f"会话过期 {tag}")
    assert found["total"] == 1 and found["items"][0]["category"] is None


def test_household_status_tapped_offline_syncs_once(
    phone: BrowserContext, live: LiveServer, scene: dict[str, Any]
) -> None:
    page = phone.new_page()
    sign_in(page, live, "demo-grid", next_path="/m/tasks")
    warning, household = scene["warnings"]["issued"], scene["households"][0]
    card = page.locator(f'#evac-list [data-household="{household}"]')
    expect(card).to_contain_text("张德明")
    expect(card).to_contain_text("待通知")
    expect(card.get_by_role("link", name="拨打 13900001111")).to_be_visible()
    expect(page.locator("#badge-tasks")).to_be_visible()
    shot(page, "m-tasks")
    assert small_targets(page) == []
    a11y.check(page)

    phone.set_offline(True)
    card.get_by_role("button", name="已撤离").click()
    expect(card.get_by_role("button", name="已撤离")).to_have_attribute("aria-pressed", "true")
    expect(card.locator(".tag.sync")).to_have_text("待同步")
    expect(page.locator("#sync")).to_have_text("待同步 1")
    shot(page, "m-tasks-offline")

    answers: list[dict[str, Any]] = []
    pattern = f"**/api/v1/warnings/{warning}/evacuation/households/*"
    phone.route(pattern, lose_first_answer(answers))
    phone.set_offline(False)
    wait_for(page, lambda: len(answers) >= 1)
    page.click("#sync")
    page.click("#sync-now")
    wait_for(page, lambda: len(answers) >= 2)
    expect(page.locator("#sync")).to_be_hidden()
    expect(card.locator(".tag.sync")).to_have_count(0)
    assert [a["body"]["changed"] for a in answers] == [True, False], "one change, then a no-op"
    phone.unroute(pattern)

    api = Api(live, "demo-commander")
    moved = api.get(f"/api/v1/warnings/{warning}/evacuation/households", status="evacuated")
    assert [h["household"] for h in moved["items"]] == [household]

    # A fixed case in my grid: verified on the spot with one tap.
    where = f'#case-list [data-case="{scene["handled"]}"]'
    case = page.locator(where)
    expect(case).to_contain_text("待核查")
    # In the page, in one go: the list may be drawn again meanwhile (the sync just finished).
    page.evaluate("where => document.querySelector(where).scrollIntoView()", where)
    shot(page, "m-tasks-case")
    case.get_by_role("button", name="核查通过").click()
    expect(page.locator("#banner")).to_contain_text(f"案件 {scene['handled']}：核查通过 已完成")
    expect(case).to_have_count(0)
    assert api.get(f"/api/v1/cases/{scene['handled']}")["state"] == "closed"

    # The home page sums it up: two households still at home.
    page.locator(".m-tabs a", has_text="首页").click()
    expect(page).to_have_url(f"{live.url}/m/")
    expect(page.locator("#count-households")).to_have_text("2")
    shot(page, "m-home")


def test_commander_confirms_a_warning(
    browser: Browser, live: LiveServer, scene: dict[str, Any]
) -> None:
    context = browser.new_context(viewport=PHONE, is_mobile=True, has_touch=True)
    page = context.new_page()
    sign_in(page, live, "demo-commander", next_path="/m/alerts")
    card = page.locator(f'#warning-list [data-warning="{scene["warnings"]["proposed"]}"]')
    expect(card).to_contain_text("待确认")
    card.get_by_role("button", name="确认预警").click()
    expect(card).to_contain_text("确定要确认预警吗？")
    shot(page, "m-alerts-confirm")
    # The list is drawn again meanwhile (back online, it refreshes): the question stays.
    card.evaluate("card => { card.dataset.drawn = 'before'; }")
    context.set_offline(True)
    context.set_offline(False)
    expect(card).not_to_have_attribute("data-drawn", "before")  # a new card
    expect(card).to_contain_text("确定要确认预警吗？")
    card.get_by_role("button", name="确定").click()
    expect(page.locator("#banner")).to_contain_text("预警已确认")
    expect(card).to_contain_text("已确认待发布")
    expect(card.get_by_role("button", name="发布预警")).to_be_visible()
    assert small_targets(page) == []
    shot(page, "m-alerts")

    context.set_offline(True)  # a decision needs a connection: said so, not queued
    card.get_by_role("button", name="发布预警").click()
    card.get_by_role("button", name="确定").click()
    expect(page.locator("#banner")).to_contain_text("没有网络，此操作需要联网")
    context.close()


def test_installable_and_starts_offline_in_english(
    browser: Browser, live: LiveServer, scene: dict[str, Any]
) -> None:
    context = browser.new_context(viewport=PHONE, is_mobile=True, has_touch=True)
    page = context.new_page()
    page.goto(f"{live.url}/login?next=/m/%3Flang%3Den")
    page.fill("#username", "demo-grid")
    page.fill("#password", live.credentials["demo-grid"])
    # The first load: everything the phone downloads once the log-in sends it to the app.
    transferred: list[tuple[str, int]] = []
    page.on(
        "requestfinished",
        lambda r: transferred.append(
            (r.url, r.sizes()["responseBodySize"] + r.sizes()["responseHeadersSize"])
        ),
    )
    page.click("button[type=submit]")
    expect(page).to_have_url(f"{live.url}/m/?lang=en")
    page.wait_for_load_state("networkidle")
    total = sum(size for _url, size in transferred)
    print(f"\nfirst load of /m/: {total / 1024:.1f} KB in {len(transferred)} requests")
    assert total < FIRST_LOAD_BUDGET, transferred
    assert not any("echarts" in url for url, _ in transferred)

    expect(page.locator(".m-brand")).to_have_text("Pocket Command Room")
    expect(page.locator(".m-tabs")).to_contain_text("Report")
    expect(page.locator("#count-households")).to_have_text(re.compile(r"^\d+$"))
    at_home = page.locator("#count-households").inner_text()
    shot(page, "m-home-en")

    manifest = page.evaluate(
        "fetch(document.querySelector('link[rel=manifest]').href).then((r) => r.json())"
    )
    assert manifest["name"] == "Kaizhou Pocket Command Room" and manifest["scope"] == "/m/"
    scope = page.evaluate("navigator.serviceWorker.ready.then((r) => r.scope)")
    assert scope == f"{live.url}/m/"
    page.wait_for_function("navigator.serviceWorker.controller !== null")
    page.wait_for_function(
        "caches.open('cityops-m-pages').then((c) => c.match('/m/')).then((r) => !!r)"
    )

    context.set_offline(True)
    page.reload()
    expect(page.locator(".m-brand")).to_have_text("Pocket Command Room")
    expect(page.locator("#net")).to_have_text("Offline")
    expect(page.locator("#count-households")).to_have_text(at_home)  # from the offline copy
    expect(page.locator('[data-stale="evac"]')).to_contain_text("Offline copy from")
    page.locator(".m-tabs a", has_text="Tasks").click()
    expect(page.locator("#evac-list")).to_contain_text("Evacuated")
    shot(page, "m-tasks-offline-start-en")
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= PHONE["width"], "no sideways scrolling"
    context.close()
