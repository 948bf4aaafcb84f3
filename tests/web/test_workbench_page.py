"""The workbench in Debian's Chromium: each role signs in through the log-in form and takes its
step of the case loop from the pages (hotline intake → register → dispatch → accept → report
done with a photo → verify → closed), by mouse and by keyboard; English is available; inputs
are labelled, focus is visible and text has enough contrast; a phone gets a one-column page."""

from __future__ import annotations

import struct
import zlib

import pytest
from playwright.sync_api import Browser, Page, expect

from tests.web import a11y
from tests.web.conftest import LiveServer, shot, sign_in

pytestmark = pytest.mark.browser
GRID = "500154024003001"


def tiny_png() -> bytes:
    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    header = struct.pack(">IIBBBBB", 2, 2, 8, 2, 0, 0, 0)
    pixels = zlib.compress(b"\x00" + b"\x30\x80\x30" * 2 + b"\x00" + b"\x30\x80\x30" * 2)
    return (
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", pixels) + chunk(b"IEND", b"")
    )


def as_person(browser: Browser, live: LiveServer, username: str, path: str) -> Page:
    context = browser.new_context(viewport={"width": 1440, "height": 900}, locale="zh-CN")
    page = context.new_page()
    sign_in(page, live, username, next_path=path)
    return page


def act(page: Page, action: str) -> None:
    """Open the action's form if folded, and send it."""
    form = page.locator(f"#act-{action}")
    if form.get_attribute("open") is None:
        form.locator("summary").click()
    form.locator("button[type=submit]").click()
    page.wait_for_load_state()
    expect(page.locator(".notice-ok")).to_be_visible()


def test_each_role_runs_its_step_of_the_case_loop(browser: Browser, live: LiveServer) -> None:
    # 受理员: a hotline call, typed into the new-case form, then registered.
    intake = as_person(browser, live, "demo-intake", "/workbench/new")
    expect(intake.locator("h1")).to_have_text("登记案件（热线 / 窗口）")
    a11y.check(intake)
    intake.fill("#n-description", "浏览器测试：后山出现新裂缝，担心滑坡")
    intake.fill("#n-region", GRID)
    intake.fill("#n-lat", "北纬")  # a slip of the keyboard: the page says which field is wrong
    intake.click("form.form-grid button[type=submit]")
    expect(intake.locator("#problem")).to_contain_text("请检查“纬度”")
    expect(intake.locator("#n-description")).to_have_value("浏览器测试：后山出现新裂缝，担心滑坡")
    intake.fill("#n-lat", "")
    intake.fill("#n-name", "王大山")
    intake.click("form.form-grid button[type=submit]")
    intake.wait_for_load_state()
    code = intake.url.rsplit("/", 1)[1].split("?")[0]
    assert len(code) == 15 and code.isdigit()
    expect(intake.locator(".page-head .state")).to_have_text("待立案")
    intake.select_option("#register-category", "DZ01")
    shot(intake, "workbench-case-register")
    act(intake, "register")
    expect(intake.locator(".page-head .state")).to_have_text("待派遣")
    intake.context.close()

    # 区派遣员: finds it in the dispatch queue by keyboard (/ to search, j to the row, Enter).
    dispatcher = as_person(browser, live, "demo-dispatcher", "/workbench?queue=dispatch")
    expect(dispatcher.locator("nav.wb-nav a[aria-current=page]")).to_contain_text("待派遣")
    a11y.check(dispatcher)
    dispatcher.keyboard.press("/")
    expect(dispatcher.locator("#f-q")).to_be_focused()
    dispatcher.keyboard.type(code)
    expect(dispatcher.locator("tr.case-row")).to_have_count(1)
    dispatcher.locator("#f-q").blur()
    dispatcher.keyboard.press("j")
    focused = dispatcher.evaluate("document.activeElement.textContent.trim()")
    assert focused == code
    outline = dispatcher.evaluate("getComputedStyle(document.activeElement).outlineStyle")
    assert outline not in ("", "none")  # the focus can be seen
    shot(dispatcher, "workbench-queue-dispatch")
    dispatcher.keyboard.press("Enter")
    dispatcher.wait_for_url(f"**/workbench/cases/{code}")
    dispatcher.select_option("#dispatch-unit", "DEPT-08")
    act(dispatcher, "dispatch")
    expect(dispatcher.locator(".page-head .state")).to_have_text("待签收")
    dispatcher.context.close()

    # 部门处置人员: accepts, then reports the work done with a photo from the site.
    handler = as_person(browser, live, "demo-handler", "/workbench?queue=accept")
    handler.click(f"a.code:text('{code}')")
    act(handler, "accept")
    expect(handler.locator(".page-head .state")).to_have_text("处置中")
    handler.locator("#act-report_done summary").click() if handler.locator(
        "#act-report_done"
    ).get_attribute("open") is None else None
    handler.set_input_files(
        "#report_done-evidence-file",
        files=[{"name": "site.png", "mimeType": "image/png", "buffer": tiny_png()}],
    )
    expect(handler.locator("#report_done-evidence-hint")).to_contain_text("已上传")
    handler.fill("#report_done-note", "已设置警戒线并加密监测")
    shot(handler, "workbench-case-report-done")
    act(handler, "report_done")
    expect(handler.locator(".thumbs img")).to_have_count(1)
    handler.context.close()

    # 监督员: verifies and the case closes; the timeline holds every step.
    inspector = as_person(browser, live, "demo-inspector", "/workbench?queue=verify")
    inspector.click(f"a.code:text('{code}')")
    inspector.fill("#verify_ok-note", "现场核实")
    act(inspector, "verify_ok")
    expect(inspector.locator(".page-head .state")).to_have_text("已结案")
    expect(inspector.locator(".timeline li")).to_have_count(6)  # report … verify
    a11y.check(inspector)
    shot(inspector, "workbench-case-closed")
    inspector.goto(f"{live.url}/workbench/cases/{code}?lang=en")
    expect(inspector.locator(".page-head .state")).to_have_text("Closed")
    expect(inspector.locator("#timeline-title")).to_have_text("Timeline")
    inspector.context.close()


def test_phone_gets_one_column_and_evaluation_exports(browser: Browser, live: LiveServer) -> None:
    context = browser.new_context(viewport={"width": 390, "height": 844}, locale="zh-CN")
    phone = context.new_page()
    sign_in(phone, live, "demo-shift", next_path="/workbench?queue=all")
    width = phone.evaluate("document.documentElement.scrollWidth")
    assert width <= 390  # nothing runs off the side
    expect(phone.locator("main table.cases").first).to_have_class("cases stack")  # a list
    shot(phone, "workbench-phone")
    phone.goto(f"{live.url}/workbench/evaluation")
    expect(phone.locator("h1")).to_have_text("绩效考核")
    # On a phone a list (.stack) stacks each row into a card, while a table of figures (the
    # evaluation, the compact ones) stays a table and scrolls sideways: stacked, the evaluation
    # was a column of bare numbers. The page's own stylesheet decides; whether this period has rows
    # to show depends on the other tests, so the three kinds are set beside each other here.
    cells = phone.evaluate(
        """() => Object.fromEntries(['cases stack', 'cases eval', 'cases compact'].map(kind => {
            const table = document.createElement('table');
            table.className = kind;
            table.innerHTML = '<thead><tr><th>a</th><th>b</th></tr></thead>'
                + '<tbody><tr><td>1</td><td>2</td></tr></tbody>';
            document.querySelector('main').append(table);
            const [one, two] = table.querySelectorAll('td');
            const display = getComputedStyle(one).display;
            const sameLine = one.getBoundingClientRect().top === two.getBoundingClientRect().top;
            table.remove();
            return [kind, [display, sameLine]];
        }))"""
    )
    assert cells == {
        "cases stack": ["block", False],
        "cases eval": ["table-cell", True],
        "cases compact": ["table-cell", True],
    }
    assert phone.evaluate("document.documentElement.scrollWidth") <= 390
    shot(phone, "workbench-evaluation-phone")
    csv = phone.locator("a.button", has_text="导出 CSV").get_attribute("href")
    assert csv and csv.startswith("/api/v1/evaluation.csv?")
    r = phone.request.get(f"{live.url}{csv}")
    assert r.ok and r.headers["content-type"].startswith("text/csv")
    context.close()
