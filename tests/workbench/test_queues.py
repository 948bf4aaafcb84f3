"""The queues hold exactly the cases the person may take the queue's action on now, and their
sizes in the navigation match the lists; bulk dispatch sends each ticked case on its own."""

from __future__ import annotations

from collections.abc import Callable

from sqlalchemy import select
from sqlalchemy.orm import Session

from cityops.auth import accounts
from cityops.auth.models import Account
from cityops.db import utcnow
from cityops.events import lifecycle, queries
from cityops.events.models import Case, Extension
from cityops.workbench import queues
from tests.events.conftest import GRID, Desk
from tests.workbench.conftest import Person, codes

PEOPLE = ("demo-intake", "demo-dispatcher", "demo-town", "demo-handler", "demo-grid", "demo-shift")


def _cases_in_every_state(desk: Callable[[str], Desk]) -> list[str]:
    intake, dispatcher, dept = desk("demo-intake"), desk("demo-dispatcher"), desk("demo-handler")
    town, grid = desk("demo-town"), desk("demo-grid")
    made = []
    for step in range(5):  # district cases: reported → registered → dispatched → handling → handled
        code = intake.report(source="hotline", region_code=GRID, description=f"山体裂缝{step}")[
            "code"
        ]
        made.append(code)
        if step >= 1:
            intake.act(code, "register", category="DZ01")
        if step >= 2:
            dispatcher.act(code, "dispatch", unit="DEPT-08")
        if step >= 3:
            dept.act(code, "accept")
        if step == 3:
            dept.act(code, "request_extension", hours=24, note="需调集监测设备")
        if step >= 4:
            dept.act(code, "report_done", note="已处置")
    parked = intake.report(source="hotline", region_code=GRID, description="待协调事项")["code"]
    intake.act(parked, "register", category="DZ01")
    desk("demo-shift").act(parked, "park", note="待区级协调")
    made.append(parked)
    for step in range(2):  # town cases reported by the grid worker
        code = grid.report(region_code=GRID, description=f"井盖缺失{step}")["code"]
        made.append(code)
        if step:
            town.act(code, "register", category="GY01")
    return made


def test_each_queue_is_exactly_the_cases_awaiting_its_action(
    desk: Callable[[str], Desk], session: Session
) -> None:
    _cases_in_every_state(desk)
    now = utcnow()
    # The lifecycle offers "decide" on any running case; the queue holds those with a request.
    pending = set(session.scalars(select(Extension.case_id).where(Extension.state == "pending")))
    checked = 0
    for username in PEOPLE:
        account_id = session.scalar(select(Account.id).where(Account.username == username))
        assert account_id is not None
        account = accounts.get_account(session, account_id)
        principal = accounts.principal_for(session, account, via="session")
        visible = list(session.scalars(select(Case).where(queries.visible(principal))))
        sizes = queues.counts(session, principal, now)
        for queue in queues.mine(principal):
            listed = set(
                session.scalars(
                    select(Case.code).where(
                        queries.visible(principal), queues.condition(queue, principal)
                    )
                )
            )
            assert sizes[queue.key] == len(listed), (username, queue.key)
            if queue.action is None:
                continue
            allowed = {
                c.code
                for c in visible
                if queue.action in lifecycle.allowed_actions(c, principal)
                and (queue.key != "extensions" or c.id in pending)
            }
            assert listed == allowed, (username, queue.key, listed ^ allowed)
            checked += len(listed)
    assert checked >= 10  # the history above put work in several people's queues


def test_queue_page_lists_the_queue_and_counts_it(
    desk: Callable[[str], Desk], person: Callable[[str], Person]
) -> None:
    made = _cases_in_every_state(desk)
    handler = person("demo-handler")
    page = handler.get("/workbench")  # the first queue with work in it
    assert page.status_code == 200 and 'data-queue="accept"' in page.text
    assert made[2] in codes(page.text) and made[3] not in codes(page.text)
    handling = handler.get("/workbench?queue=handle")
    assert codes(handling.text) == [made[3]]
    searched = person("demo-intake").get("/workbench", params={"queue": "all", "q": "山体裂缝3"})
    assert codes(searched.text) == [made[3]]
    # htmx asks for just the list while the filter is typed.
    partial = person("demo-intake").get(
        "/workbench",
        params={"queue": "all", "q": "井盖缺失"},
        headers={"HX-Request": "true", "HX-Target": "case-list"},
    )
    assert partial.text.lstrip().startswith('<section id="case-list"')
    assert set(codes(partial.text)) == {made[6], made[7]}


def test_bulk_dispatch_sends_each_case_on_its_own(
    desk: Callable[[str], Desk], person: Callable[[str], Person], session: Session
) -> None:
    intake, dispatcher = desk("demo-intake"), desk("demo-dispatcher")
    made = []
    for n in range(3):
        code = intake.report(source="hotline", region_code=GRID, description=f"滑坡隐患{n}")["code"]
        intake.act(code, "register", category="DZ01")
        made.append(code)
    dispatcher.act(made[2], "dispatch", unit="DEPT-08")  # someone else was quicker with this one
    bench = person("demo-dispatcher")
    listed = codes(bench.get("/workbench?queue=dispatch").text)
    assert made[0] in listed and made[2] not in listed
    r = bench.submit("/workbench/bulk-dispatch", {"codes": made, "unit": "DEPT-08"})
    assert r.status_code == 200
    assert "已派遣 2 件" in r.text and "1 件未能派遣" in r.text and made[2] in r.text
    session.expire_all()
    states = dict(session.execute(select(Case.code, Case.state).where(Case.code.in_(made))).all())
    assert states == {made[0]: "dispatched", made[1]: "dispatched", made[2]: "dispatched"}
    unit_events = desk("demo-dispatcher").get(made[2])["timeline"]
    assert [e["action"] for e in unit_events].count("dispatch") == 1  # not sent twice

    none = bench.submit("/workbench/bulk-dispatch", {"unit": "DEPT-08"})
    assert "请先勾选要派遣的案件" in none.text
    forged = bench.submit("/workbench/bulk-dispatch", {"codes": made[:1]}, csrf=False)
    assert forged.status_code == 403
