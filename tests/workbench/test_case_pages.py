"""The workbench's case pages through their forms (no browser): the whole loop by the people
whose job each step is, refusals that say why and change nothing, the hotline form, and the way
back after a session ends. tests/web/test_workbench_page.py drives the same pages in Chromium."""

from __future__ import annotations

import re
from collections.abc import Callable
from urllib.parse import quote

from fastapi.testclient import TestClient
from sqlalchemy import select
from sqlalchemy.orm import Session

from cityops.auth.models import AuditEntry
from cityops.events.models import Case, CaseEvent
from tests.events.conftest import GRID, Desk
from tests.workbench.conftest import Person, version

PersonFor = Callable[[str], Person]


def _state(session: Session, code: str) -> str:
    session.expire_all()
    return str(session.scalar(select(Case.state).where(Case.code == code)))


def test_signed_out_pages_send_to_sign_in_and_back(anon: TestClient) -> None:
    for path in (
        "/workbench",
        "/workbench?queue=verify",
        "/workbench/cases/500154024000001",
        "/workbench/new",
        "/workbench/evaluation",
    ):
        r = anon.get(path, follow_redirects=False)
        assert r.status_code == 303 and r.headers["location"] == f"/login?next={quote(path)}"
    # A form sent after the session ended goes to the log-in and back to the case afterwards.
    r = anon.post("/workbench/cases/500154024000001/actions/accept", follow_redirects=False)
    assert r.status_code == 303
    assert r.headers["location"] == "/login?next=/workbench/cases/500154024000001"


def test_the_whole_loop_through_the_forms(person: PersonFor, session: Session) -> None:
    intake, dispatcher = person("demo-intake"), person("demo-dispatcher")
    handler, inspector = person("demo-handler"), person("demo-inspector")

    form = intake.get("/workbench/new")
    key = re.search(r'name="idempotency_key" value="([0-9a-f]{32})"', form.text)
    assert form.status_code == 200 and key
    new = {
        "source": "hotline",
        "description": "后山出现裂缝，担心滑坡",
        "region_code": GRID,
        "reporter_name": "王大山",
        "reporter_phone": "13912345678",
        "idempotency_key": key.group(1),
    }
    made = intake.submit("/workbench/new", new)
    assert made.status_code == 303
    code = made.headers["location"].rsplit("/", 1)[1]
    # A double click on the form (same key) does not make a second case.
    again = intake.submit("/workbench/new", new)
    assert again.headers["location"].endswith(code)
    assert session.scalar(select(Case.id).where(Case.description == new["description"]))

    page = intake.get(f"/workbench/cases/{code}")
    assert page.status_code == 200 and "王**" in page.text and "139****5678" in page.text
    assert f"/workbench/cases/{code}/actions/register" in page.text
    assert "/actions/dispatch" not in page.text  # only what this person may do now
    assert code in intake.get("/workbench?queue=register").text

    steps = [
        (intake, "register", {"category": "DZ01", "urgency": "urgent"}, "registered"),
        (dispatcher, "dispatch", {"unit": "DEPT-08", "note": "请尽快核查"}, "dispatched"),
        (handler, "accept", {}, "handling"),
        (handler, "report_done", {"note": "已设置警戒并监测"}, "handled"),
        (inspector, "verify_ok", {"note": "现场核实"}, "closed"),
    ]
    for who, action, data, state in steps:
        page = who.get(f"/workbench/cases/{code}")
        body = {**data, "version": version(page.text, action)}
        r = who.submit(f"/workbench/cases/{code}/actions/{action}", body)
        assert r.status_code == 303, (action, r.text[:2000])
        assert r.headers["location"] == f"/workbench/cases/{code}?done={action}"
        assert _state(session, code) == state
    done = inspector.get(f"/workbench/cases/{code}?done=verify_ok")
    assert "操作成功：核查通过，结案" in done.text
    case_id = session.scalar(select(Case.id).where(Case.code == code))
    trail = session.execute(
        select(CaseEvent.action, CaseEvent.actor_name).where(CaseEvent.case_id == case_id)
    ).all()
    assert [a for a, _ in trail if a in dict.fromkeys(s[1] for s in steps)] == [s[1] for s in steps]
    assert all(name for _a, name in trail)  # who did each step is on the record


def test_refusals_say_why_and_change_nothing(
    person: PersonFor, desk: Callable[[str], Desk], session: Session
) -> None:
    intake, dispatcher = person("demo-intake"), person("demo-dispatcher")
    code = desk("demo-intake").report(source="hotline", region_code=GRID)["code"]
    desk("demo-intake").act(code, "register", category="DZ01")
    path = f"/workbench/cases/{code}/actions/dispatch"

    missing = dispatcher.submit(path, {"note": "x"})
    assert missing.status_code == 422
    assert "请选择单位" in missing.text and "请检查“承办单位”" in missing.text
    assert ">x</textarea>" in missing.text  # what was typed is kept
    assert _state(session, code) == "registered"

    forged = dispatcher.submit(path, {"unit": "DEPT-08"}, csrf=False)
    assert forged.status_code == 403 and "页面已过期" in forged.text
    stale = dispatcher.submit(path, {"unit": "DEPT-08", "version": "999"})
    assert stale.status_code == 409 and "案件已被他人更新" in stale.text
    bad_number = dispatcher.submit(path, {"unit": "DEPT-08", "version": "abc"})
    assert bad_number.status_code == 422 and "version" not in bad_number.headers.get("location", "")
    not_yours = intake.submit(path, {"unit": "DEPT-08"})
    assert not_yours.status_code == 403 and "您没有权限执行此操作" in not_yours.text
    assert _state(session, code) == "registered"

    hidden = person("demo-citizen").get(f"/workbench/cases/{code}")
    assert hidden.status_code == 404 and "找不到该案件" in hidden.text


def test_new_case_form_keeps_what_was_typed(person: PersonFor, session: Session) -> None:
    intake = person("demo-intake")
    bad = intake.submit(
        "/workbench/new",
        {"description": "路灯不亮", "lat": "北纬31", "lon": "108.4", "address": "汉丰街道"},
    )
    assert bad.status_code == 422 and "请检查“纬度”" in bad.text
    assert 'value="汉丰街道"' in bad.text and 'value="北纬31"' in bad.text
    empty = intake.submit("/workbench/new", {"description": "  ", "region_code": GRID})
    assert empty.status_code == 422 and "问题描述" in empty.text
    assert not session.scalar(select(Case.id).where(Case.description == "路灯不亮"))


def test_unmasking_is_audited(
    person: PersonFor, desk: Callable[[str], Desk], session: Session
) -> None:
    code = desk("demo-intake").report(
        source="hotline", region_code=GRID, reporter_name="李四", reporter_phone="13700001111"
    )["code"]
    shift = person("demo-shift")
    assert "李*" in shift.get(f"/workbench/cases/{code}").text
    shown = shift.get(f"/workbench/cases/{code}?unmask=true")
    assert "李四" in shown.text and "13700001111" in shown.text
    assert session.scalar(select(AuditEntry.id).where(AuditEntry.action == "unmask"))
    assert person("demo-handler").get(f"/workbench/cases/{code}?unmask=true").status_code in (
        403,
        404,
    )
