"""The closed loop through the API: intake → register → dispatch → accept → handle → verify →
close → feedback, with the right people at the right levels, and everything on the timeline."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from cityops.catalog import service as catalog
from cityops.events.models import Case
from tests.events.conftest import GRID, YIHE, Desk

DeskFor = Callable[[str], Desk]


def actions(case: dict[str, object]) -> list[str]:
    return [e["action"] for e in case["timeline"]]  # type: ignore[index, union-attr]


def test_town_loop_from_citizen_report_to_satisfied_feedback(
    desk: DeskFor, section_handler: Desk
) -> None:
    citizen, town, grid = desk("demo-citizen"), desk("demo-town"), desk("demo-grid")
    case = citizen.report(
        region_code=GRID,
        address="太康村6组老沟湾路口",
        reporter_name="张小红",
        reporter_phone="13812345678",
    )
    code = case["code"]
    assert case["state"] == "reported" and case["level"] == "town" and case["source"] == "citizen"
    assert case["reporter_name"] == "张小红"  # the reporter sees their own name

    seen = town.get(code)
    assert seen["allowed_actions"][:3] == ["register", "reject", "merge"]
    assert seen["reporter_phone"] == "138****5678" and seen["reporter_name"] == "张**"
    town.act(code, "register", category="GY01", urgency="urgent", note="核实属实")
    targets = town.client.get(f"/api/v1/cases/{code}/routing", headers=town.headers).json()[
        "targets"
    ]
    assert f"TC-{YIHE}-MS" in [t["code"] for t in targets]
    dispatched = town.act(code, "dispatch", unit=f"TC-{YIHE}-MS")
    assert dispatched["state"] == "dispatched" and dispatched["deadline_at"]

    section_handler.act(code, "accept")
    section_handler.act(code, "report_done", note="已更换井盖", evidence=[])
    closed = grid.act(code, "verify_ok", note="现场核查已修复")
    assert closed["state"] == "closed" and closed["closed_at"]

    rated = citizen.act(code, "rate", satisfied=True)
    assert rated["satisfied"] is True
    assert actions(rated) == ["register", "dispatch", "accept", "report_done", "verify_ok", "rate"]
    first = rated["timeline"][0]
    assert first["from_state"] == "reported" and first["to_state"] == "registered"
    assert rated["timeline"][1]["unit_code"] == f"TC-{YIHE}-MS"


def test_district_loop_with_rework_until_problem_case(desk: DeskFor) -> None:
    intake, dispatcher, dept, inspector = (
        desk("demo-intake"),
        desk("demo-dispatcher"),
        desk("demo-handler"),
        desk("demo-inspector"),
    )
    code = intake.report(source="hotline", region_code=GRID, description="后山出现裂缝，担心滑坡")[
        "code"
    ]
    assert intake.get(code)["level"] == "district"
    intake.act(code, "register", category="DZ01")
    dispatcher.act(code, "dispatch", unit="DEPT-08")  # 区规划自然资源局
    for round_ in (1, 2, 3):
        dept.act(code, "accept")
        dept.act(code, "report_done", note=f"第{round_}次处置")
        after = inspector.act(code, "verify_fail", note="裂缝仍在扩展")
        assert after["rework_count"] == round_
    # Already a district case: flagged for district supervision, still the department's to redo.
    assert after["is_problem"] is True and after["level"] == "district"
    assert after["state"] == "dispatched" and after["unit"] == "DEPT-08"
    assert actions(after)[-1] == "problem" and actions(after).count("problem") == 1
    assert dept.get(code)["allowed_actions"] == ["accept", "return", "request_extension"]


def test_town_case_passed_through_three_units_goes_to_the_district(
    desk: DeskFor, handler_at: Callable[[str], Desk]
) -> None:
    citizen, town = desk("demo-citizen"), desk("demo-town")
    code = citizen.report(region_code=GRID)["code"]
    town.act(code, "register", category="SR01")
    for unit in (f"TC-{YIHE}-MS", f"TC-{YIHE}-PA"):
        town.act(code, "dispatch", unit=unit)
        handler_at(unit).act(code, "return", note="非本单位职责")
    assert town.get(code)["units_passed"] == 2
    after = town.act(code, "dispatch", unit=f"VS-{GRID[:12]}")
    assert after["units_passed"] == 3 and after["is_problem"] is True
    assert after["level"] == "district" and after["state"] == "registered" and after["unit"] is None
    assert actions(after)[-2:] == ["dispatch", "problem"]
    district = desk("demo-dispatcher").get(code)
    assert "dispatch" in district["allowed_actions"]


def test_illegal_transitions_are_409_with_what_is_allowed(desk: DeskFor) -> None:
    intake = desk("demo-intake")
    code = intake.report(source="hotline", region_code=GRID)["code"]
    r = intake.client.post(f"/api/v1/cases/{code}/actions/accept", json={}, headers=intake.headers)
    assert r.status_code == 409
    assert set(r.json()["error"]["allowed_actions"]) >= {"register", "reject", "merge"}
    assert (
        intake.client.post(
            f"/api/v1/cases/{code}/actions/fly", json={}, headers=intake.headers
        ).status_code
        == 422
    )


def test_the_right_role_at_the_right_level(desk: DeskFor) -> None:
    intake, town, citizen = desk("demo-intake"), desk("demo-town"), desk("demo-citizen")
    district_case = intake.report(source="hotline", region_code=GRID)["code"]
    refused = town.act(district_case, "register", expect=403, category="GY01")
    assert refused["error"]["allowed_actions"] == []
    citizen_case = citizen.report(region_code=GRID)["code"]
    intake.act(citizen_case, "register", expect=403, category="GY01")  # a town-level case
    citizen.act(
        citizen_case, "register", expect=403, category="GY01"
    )  # their own case, but not theirs to register
    town.act(citizen_case, "register", category="GY01")


def test_handlers_see_only_their_units_cases(desk: DeskFor) -> None:
    intake, dispatcher, dept = desk("demo-intake"), desk("demo-dispatcher"), desk("demo-handler")
    mine = intake.report(source="hotline", region_code=GRID)["code"]
    other = intake.report(source="hotline", region_code=GRID)["code"]
    for code in (mine, other):
        intake.act(code, "register", category="GY01")
    dispatcher.act(mine, "dispatch", unit="DEPT-08")
    dispatcher.act(other, "dispatch", unit="DEPT-10")
    listed = dept.client.get("/api/v1/cases", headers=dept.headers).json()
    assert [c["code"] for c in listed["items"]] == [mine]
    dept.get(other, expect=404)


def test_dispatch_sets_the_deadline_on_the_working_calendar(
    desk: DeskFor, session: Session
) -> None:
    intake, dispatcher = desk("demo-intake"), desk("demo-dispatcher")
    code = intake.report(source="hotline", region_code=GRID)["code"]
    intake.act(code, "register", category="GY01", urgency="normal")
    body = dispatcher.act(code, "dispatch", unit="DEPT-10")
    case = session.scalars(select(Case).where(Case.code == code)).one()
    category = catalog.get(session, "GY01")
    assert case.clock_started_at is not None
    expected = catalog.calendar().add(
        case.clock_started_at, category.limit_normal_h, working=category.clock == "working"
    )
    assert datetime.fromisoformat(body["deadline_at"]) == expected


def test_park_pauses_and_extensions_extend(desk: DeskFor, session: Session) -> None:
    intake, dispatcher, shift, dept = (
        desk("demo-intake"),
        desk("demo-dispatcher"),
        desk("demo-shift"),
        desk("demo-handler"),
    )
    code = intake.report(source="hotline", region_code=GRID)["code"]
    intake.act(code, "register", category="DZ01")
    first = dispatcher.act(code, "dispatch", unit="DEPT-08")
    dept.act(code, "accept")
    assert "decide_extension" not in dispatcher.get(code)["allowed_actions"]  # nothing asked
    asked = dept.act(code, "request_extension", hours=2, note="需要专业队伍")
    assert "decide_extension" in dispatcher.get(code)["allowed_actions"]
    ext_id = asked["timeline"][-1]["data"]["extension"]
    dept.act(code, "request_extension", expect=409, hours=1, note="再申请")  # one pending at a time
    approved = dispatcher.act(code, "decide_extension", extension_id=ext_id, approve=True)
    before = datetime.fromisoformat(first["deadline_at"])
    after = datetime.fromisoformat(approved["deadline_at"])
    assert (after - before).total_seconds() == 2 * 3600  # DZ01 runs on natural hours

    parked = shift.act(code, "park", note="等待地勘结论")
    assert parked["state"] == "parked"
    dept.act(code, "report_done", expect=409, note="x")
    resumed = shift.act(code, "unpark")
    assert resumed["state"] == "handling"
    assert datetime.fromisoformat(resumed["deadline_at"]) >= after


def test_extension_after_the_deadline_is_refused(desk: DeskFor, session: Session) -> None:
    intake, dispatcher, dept = desk("demo-intake"), desk("demo-dispatcher"), desk("demo-handler")
    code = intake.report(source="hotline", region_code=GRID)["code"]
    intake.act(code, "register", category="DZ01")
    dispatcher.act(code, "dispatch", unit="DEPT-08")
    case = session.scalars(select(Case).where(Case.code == code)).one()
    case.deadline_at = datetime(2020, 1, 1, tzinfo=case.created_at.tzinfo)
    session.flush()
    r = dept.act(code, "request_extension", expect=409, hours=4, note="来不及")
    assert "before the deadline" in r["error"]["message"]


def test_return_escalate_and_delegate(desk: DeskFor, section_handler: Desk) -> None:
    citizen, town, dispatcher = desk("demo-citizen"), desk("demo-town"), desk("demo-dispatcher")
    code = citizen.report(region_code=GRID)["code"]
    town.act(code, "register", category="SR01")
    town.act(code, "dispatch", unit=f"TC-{YIHE}-MS")
    section_handler.act(code, "return", expect=422)  # a reason is required
    back = section_handler.act(code, "return", note="不属于本办职责")
    assert back["state"] == "registered" and back["unit"] is None
    up = town.act(code, "escalate", note="需区级部门协调")
    assert up["level"] == "district" and up["state"] == "registered"
    town.get(code)  # still visible to the town
    assert "escalate" not in dispatcher.get(code)["allowed_actions"]
    down = dispatcher.act(code, "delegate")
    assert down["level"] == "town"


def test_merge_keeps_reporters_following_the_master(desk: DeskFor, session: Session) -> None:
    from cityops.events.models import Follower

    citizen, town = desk("demo-citizen"), desk("demo-town")
    lon, lat = town.client.get(f"/api/v1/regions/{GRID}", headers=town.headers).json()["center"]
    first = citizen.report(lat=lat, lon=lon, category="SR01", description="路边垃圾堆积")
    second = citizen.report(
        lat=lat,
        lon=lon + 0.0005,
        category="SR01",
        reporter_phone="13900001111",
        description="垃圾很多没人清",
    )
    assert first["region_code"] == GRID and first["code"] in second["duplicates"]
    far = citizen.report(lat=lat, lon=lon + 0.01, category="SR01", description="另一处垃圾")
    assert first["code"] not in far["duplicates"]  # about 950 m away: not a duplicate

    merged = town.act(second["code"], "merge", master=first["code"])
    assert merged["state"] == "merged" and merged["master"] == first["code"]
    town.act(second["code"], "merge", expect=409, master=first["code"])
    master_id = session.scalar(select(Case.id).where(Case.code == first["code"]))
    phones = session.scalars(select(Follower.phone).where(Follower.case_id == master_id)).all()
    assert "13900001111" in phones and len(phones) == 2
    assert "merged_in" in actions(town.get(first["code"]))


def test_unsatisfied_feedback_reopens_as_rework(desk: DeskFor, section_handler: Desk) -> None:
    citizen, town, grid = desk("demo-citizen"), desk("demo-town"), desk("demo-grid")
    code = citizen.report(region_code=GRID)["code"]
    town.act(code, "register", category="SR01")
    town.act(code, "dispatch", unit=f"TC-{YIHE}-MS")
    section_handler.act(code, "accept")
    section_handler.act(code, "report_done", note="已清理")
    grid.act(code, "verify_ok")
    reopened = citizen.act(code, "rate", satisfied=False, note="又堆起来了")
    assert reopened["state"] == "dispatched" and reopened["rework_count"] == 1
    assert reopened["unit"] == f"TC-{YIHE}-MS"
    desk("demo-admin").act(code, "rate", expect=409, satisfied=True)


def test_intake_bad_input(desk: DeskFor) -> None:
    citizen = desk("demo-citizen")
    c = citizen.client
    bad = [
        ({"description": "x", "region_code": GRID}, "description"),
        ({"description": "没有位置的问题"}, "lat"),
        ({"description": "北京的问题", "lat": 39.9, "lon": 116.4}, "lat,lon"),
        ({"description": "只有纬度", "lat": 31.1}, "lon"),
        ({"description": "未知类别", "region_code": GRID, "category": "ZZ99"}, "category"),
        ({"description": "冒充热线", "region_code": GRID, "source": "hotline"}, "source"),
        ({"description": "紧急程度", "region_code": GRID, "urgency": "panic"}, "urgency"),
    ]
    for body, field in bad:
        r = c.post("/api/v1/cases", json=body, headers=citizen.headers)
        assert r.status_code == 422, (body, r.text)
        assert field in [f["field"] for f in r.json()["error"]["fields"]], (body, r.text)


def test_idempotent_retry_returns_the_same_case(desk: DeskFor) -> None:
    grid = desk("demo-grid")
    body = {"description": "路灯不亮", "region_code": GRID, "idempotency_key": "offline-0001-abcd"}
    first = grid.client.post("/api/v1/cases", json=body, headers=grid.headers)
    again = grid.client.post("/api/v1/cases", json=body, headers=grid.headers)
    assert first.status_code == 201 and again.status_code == 200
    assert first.json()["code"] == again.json()["code"]


def test_stale_version_is_a_conflict(desk: DeskFor) -> None:
    intake = desk("demo-intake")
    case = intake.report(source="hotline", region_code=GRID)
    intake.act(case["code"], "register", category="GY01")
    stale = intake.act(case["code"], "reject", expect=409, version=case["version"], note="重复")
    assert stale["error"]["fields"][0]["field"] == "version"


def test_lists_filter_and_count_by_state(desk: DeskFor) -> None:
    intake = desk("demo-intake")
    codes = [intake.report(source="hotline", region_code=GRID)["code"] for _ in range(3)]
    intake.act(codes[0], "register", category="GY01")
    page = intake.client.get(
        "/api/v1/cases", params={"region": YIHE, "limit": 2}, headers=intake.headers
    ).json()
    assert page["total"] >= 3 and len(page["items"]) == 2
    assert page["counts"]["registered"] >= 1 and page["counts"]["reported"] >= 2
    only = intake.client.get(
        "/api/v1/cases", params={"state": "registered"}, headers=intake.headers
    ).json()
    assert {c["state"] for c in only["items"]} == {"registered"}
    naive = intake.client.get(
        "/api/v1/cases", params={"since": "2026-01-01T00:00:00"}, headers=intake.headers
    )
    assert naive.status_code == 422


def test_feedback_window_and_duplicate_radius_follow_settings(
    app: object, desk: DeskFor, section_handler: Desk
) -> None:
    from cityops import events
    from cityops.events import intake, lifecycle

    settings = app.state.settings.model_copy(  # type: ignore[attr-defined]
        update={"feedback_days": 1, "duplicate_radius_m": 1500.0}
    )
    try:
        events.configure(settings)
        assert lifecycle.FEEDBACK_DAYS == 1 and intake.DUPLICATE_RADIUS_M == 1500.0
        citizen = desk("demo-citizen")
        lon, lat = citizen.client.get(f"/api/v1/regions/{GRID}", headers=citizen.headers).json()[
            "center"
        ]
        first = citizen.report(lat=lat, lon=lon, category="SR01", description="垃圾")
        near = citizen.report(lat=lat, lon=lon + 0.01, category="SR01", description="另一处垃圾")
        assert first["code"] in near["duplicates"]  # about 950 m: within 1,500 m now
    finally:
        events.configure(app.state.settings)  # type: ignore[attr-defined]


def test_routing_rules_come_first(client: object, desk: DeskFor) -> None:
    admin = desk("demo-admin")
    rule = admin.client.post(
        "/api/v1/routing-rules",
        headers=admin.headers,
        json={
            "level": "district",
            "unit_code": "DEPT-17",
            "category_code": "DZ",
            "region_code": YIHE,
            "note": "义和镇地灾由应急局牵头",
        },
    )
    assert rule.status_code == 201
    intake = desk("demo-intake")
    code = intake.report(source="hotline", region_code=GRID)["code"]
    intake.act(code, "register", category="DZ01")
    suggestions = (
        desk("demo-dispatcher")
        .client.get(f"/api/v1/cases/{code}/routing", headers=desk("demo-dispatcher").headers)
        .json()["suggestions"]
    )
    assert suggestions[0]["unit"] == "DEPT-17" and "义和镇地灾" in suggestions[0]["reason"]
    assert suggestions[1]["unit"] == "DEPT-08" or suggestions[1]["action"] == "delegate"
    bad = admin.client.post(
        "/api/v1/routing-rules",
        headers=admin.headers,
        json={"level": "district", "unit_code": "NOPE"},
    )
    assert bad.status_code == 422 and bad.json()["error"]["fields"][0]["field"] == "unit_code"
