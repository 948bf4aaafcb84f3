"""The cockpit API on both backends: figures against the hand-counted world (see conftest),
region scope, the breadcrumb, the layers, and errors that name the field."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from zoneinfo import ZoneInfo

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session

from cityops.cockpit import layers
from cityops.cockpit.service import OPEN, day_bounds
from cityops.events import evaluation
from tests.cockpit.conftest import DISTRICT, G1, OTHER_TOWN, YIHE, World

Login = Callable[[str], dict[str, str]]


def summary(client: TestClient, headers: dict[str, str] | None = None, **params: str) -> dict:
    r = client.get("/api/v1/cockpit/summary", params=params, headers=headers or {})
    assert r.status_code == 200, r.text
    return r.json()


def warnings_of(body: dict) -> dict[str, dict | None]:
    return {w["code"]: w["evacuation"] for w in body["warnings"]}


def test_district_summary_matches_the_hand_count(client: TestClient, world: World) -> None:
    s = summary(client)
    assert s["region"]["code"] == DISTRICT and s["region"]["child_level"] == "town"
    assert [c["name"] for c in s["breadcrumb"]] == ["开州区"]
    today = s["today"]
    assert (today["intake"], today["closed"], today["open"], today["overdue"]) == (4, 1, 7, 3)
    rates = s["rates"]
    assert (rates["dispatched"], rates["closed"], rates["closed_on_time"]) == (6, 2, 1)
    assert rates["closure_rate"] == 0.3333 and rates["on_time_closure_rate"] == 0.5
    assert [(x["key"], x["count"]) for x in s["by_source"]] == [
        ("hotline", 4),
        ("citizen", 3),
        ("grid_worker", 2),
        ("department", 1),
    ]
    cats = s["by_category"]
    assert [(x["key"], x["count"]) for x in cats["items"]] == [
        ("GY02", 5),
        (world.cat_b.code, 4),
        ("", 1),
    ]
    assert cats["items"][0]["name"] == world.cat_a.name and cats["other"] == 0
    trend = s["trend"]
    assert len(trend["days"]) == 30 and trend["days"][-1] == today["date"]
    assert trend["intake"][-1] == 4 and trend["intake"][-2] == 2 and trend["intake"][19] == 4
    assert sum(trend["intake"]) == 10
    assert trend["closed"][-2:] == [1, 1] and sum(trend["closed"]) == 2
    assert s["alarms"] == {
        "critical": 1,
        "major": 1,
        "minor": 0,
        "warning": 1,
        "total": 3,
        "unacked": 2,
        "shelved": 1,
    }
    assert s["devices"] == {"total": 5, "online": 2, "offline": 3}
    assert s["risk_points"] == {
        "red": 1,
        "orange": 1,
        "yellow": 1,
        "blue": 0,
        "none": 1,
        "total": 4,
    }
    # Most severe first; the proposal has no evacuation yet.
    assert [w["code"] for w in s["warnings"]] == ["CK-W1", "CK-W2", "CK-W3"]
    evac = warnings_of(s)
    assert evac["CK-W2"] is None
    assert evac["CK-W1"] == {
        "state": "open",
        "households": 3,
        "at_home": 3,
        "evacuated": 4,
        "sheltered": 2,
        "total": 9,
    }
    assert evac["CK-W3"] is not None
    assert (evac["CK-W3"]["at_home"], evac["CK-W3"]["total"]) == (11, 11)
    assert s["children"] == [
        {"code": OTHER_TOWN, "open": 1, "overdue": 1},
        {"code": YIHE, "open": 6, "overdue": 2},
    ]


def test_town_dispatcher_sees_their_town(anon: TestClient, login: Login, world: World) -> None:
    s = summary(anon, login("demo-town"))  # default: the caller's own area
    assert s["region"]["code"] == YIHE and s["region"]["child_level"] == "village"
    assert [(c["name"], c["in_scope"]) for c in s["breadcrumb"]] == [
        ("开州区", False),
        ("义和镇", True),
    ]
    t = s["today"]
    assert (t["intake"], t["closed"], t["open"], t["overdue"]) == (3, 0, 6, 2)
    r = s["rates"]
    assert (r["dispatched"], r["closed"], r["closed_on_time"]) == (5, 1, 1)
    assert r["closure_rate"] == 0.2 and r["on_time_closure_rate"] == 1.0
    assert [(x["key"], x["count"]) for x in s["by_source"]] == [
        ("hotline", 3),
        ("citizen", 2),
        ("grid_worker", 2),
    ]
    by_code = sorted([("GY02", 3), (world.cat_b.code, 3)])
    assert [(x["key"], x["count"]) for x in s["by_category"]["items"]] == [*by_code, ("", 1)]
    assert (s["alarms"]["total"], s["alarms"]["unacked"], s["alarms"]["shelved"]) == (2, 1, 1)
    assert s["devices"] == {"total": 4, "online": 1, "offline": 3}
    assert s["risk_points"]["total"] == 3 and s["risk_points"]["yellow"] == 0
    # The 汉丰街道 warning reaches into 义和镇: only its household here is counted.
    evac = warnings_of(s)
    assert list(evac) == ["CK-W1", "CK-W2", "CK-W3"]
    assert evac["CK-W1"] is not None and evac["CK-W1"]["total"] == 9
    assert evac["CK-W3"] == {
        "state": "open",
        "households": 1,
        "at_home": 6,
        "evacuated": 0,
        "sheltered": 0,
        "total": 6,
    }
    assert s["children"] == [
        {"code": f"{YIHE}001", "open": 2, "overdue": 1},
        {"code": f"{YIHE}003", "open": 3, "overdue": 1},
    ]  # the case located only to the town counts in the totals alone


def test_grid_drill_down_and_breadcrumb(anon: TestClient, login: Login, world: World) -> None:
    for user, params in (("demo-grid", {}), ("demo-admin", {"region": G1})):
        s = summary(anon, login(user), **params)
        assert s["region"]["code"] == G1 and s["region"]["child_level"] is None
        crumbs = [(c["code"], c["in_scope"]) for c in s["breadcrumb"]]
        in_scope = user == "demo-admin"
        assert crumbs == [
            (DISTRICT, in_scope),
            (YIHE, in_scope),
            (G1[:12], in_scope),
            (G1, True),
        ]
        assert [c["name"] for c in s["breadcrumb"]] == [
            "开州区",
            "义和镇",
            "太康村",
            "太康村第1网格",
        ]
        assert (s["today"]["intake"], s["today"]["open"], s["today"]["overdue"]) == (2, 2, 1)
        assert s["children"] == []
        assert list(warnings_of(s)) == ["CK-W1"]
        assert s["devices"] == {"total": 2, "online": 1, "offline": 1}


def test_regions_outside_the_scope_are_not_found(
    anon: TestClient, login: Login, world: World
) -> None:
    town, grid = login("demo-town"), login("demo-grid")
    url = "/api/v1/cockpit/summary"
    refused = [
        anon.get(url, params={"region": OTHER_TOWN}, headers=town),
        anon.get(url, params={"region": DISTRICT}, headers=town),
        anon.get(url, params={"region": "500154999"}, headers=town),  # does not exist
        anon.get("/api/v1/cockpit/layers/cases", params={"region": YIHE}, headers=grid),
    ]
    for r in refused:
        assert r.status_code == 404, r.text
        assert r.json()["error"]["fields"][0]["field"] == "region"
    assert len({r.json()["error"]["code"] for r in refused}) == 1  # existence is not revealed


def test_bad_input_names_the_field(client: TestClient) -> None:
    for path, params, field in [
        ("summary", {"region": "abc"}, "region"),
        ("summary", {"region": "5001540"}, "region"),  # 7 digits: no level has them
        ("layers/cases", {"region": "5001540241"}, "region"),
        ("layers/boats", {}, "layer"),
    ]:
        r = client.get(f"/api/v1/cockpit/{path}", params=params)
        assert r.status_code == 422, r.text
        assert [f["field"] for f in r.json()["error"]["fields"]] == [field]


def test_who_may_look(anon: TestClient, login: Login, world: World) -> None:
    assert anon.get("/api/v1/cockpit/summary").status_code == 401
    citizen = anon.get("/api/v1/cockpit/summary", headers=login("demo-citizen"))
    assert citizen.status_code == 403  # no alarms:read, devices:read …
    # A unit handler counts the cases their unit worked on (the event center's rule).
    s = summary(anon, login("demo-handler"))
    t = s["today"]
    assert (t["intake"], t["closed"], t["open"], t["overdue"]) == (1, 0, 1, 1)
    assert s["rates"]["dispatched"] == 1 and s["rates"]["closure_rate"] == 0.0
    assert s["rates"]["on_time_closure_rate"] is None
    assert [(x["key"], x["count"]) for x in s["by_source"]] == [("citizen", 1)]
    assert s["alarms"]["total"] == 3  # alarms are the region's


def layer(client: TestClient, name: str, region: str = YIHE) -> dict:
    r = client.get(f"/api/v1/cockpit/layers/{name}", params={"region": region})
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("application/geo+json")
    body = r.json()
    assert body["type"] == "FeatureCollection" and body["layer"] == name
    assert body["region"] == region and body["truncated"] is False
    assert all(f["geometry"]["type"] == "Point" for f in body["features"])
    return body


def props(body: dict, key: str) -> list:
    return [f["properties"][key] for f in body["features"]]


def test_layers_of_a_town(client: TestClient, world: World) -> None:
    cases = layer(client, "cases")
    codes = {k: c.code for k, c in world.cases.items()}
    by_code = {f["properties"]["code"]: f for f in cases["features"]}
    assert set(by_code) == {codes[k] for k in ("c1", "c2", "c3", "c4", "c5", "c9")}
    assert {c for c, f in by_code.items() if f["properties"]["overdue"]} == {
        codes["c2"],
        codes["c4"],
    }
    town_level = by_code[codes["c9"]]  # no coordinates: drawn at the town's centre
    assert town_level["properties"]["located"] == "region"
    assert town_level["geometry"]["coordinates"] == [round(v, 6) for v in world.centre[YIHE]]
    assert by_code[codes["c1"]]["properties"]["state"] == "reported"

    alarms = layer(client, "alarms")
    assert props(alarms, "severity") == ["critical", "major", "minor"]
    assert props(alarms, "shelved") == [False, False, True]

    points = layer(client, "risk_points")
    assert props(points, "code") == ["CK-RP1", "CK-RP2", "CK-RP4"]
    assert props(points, "level") == ["red", "orange", "none"]

    devices = layer(client, "devices")
    assert props(devices, "code") == ["CK-D2", "CK-D3", "CK-D4", "CK-D1"]  # offline first
    assert props(devices, "online") == [False, False, False, True]

    workers = layer(client, "workers")
    assert len(workers["features"]) == 6  # 义和镇's six grids in the small district
    assert "GPS" in workers["note"]
    here = next(f["properties"] for f in workers["features"] if f["properties"]["grid"] == G1)
    assert world.cover is not None
    assert (here["person"], here["duty"]) == (world.cover.code, "shift")
    assert here["name"].endswith("*") and here["position"] == "grid_centre"

    shelters = layer(client, "shelters")
    assert [(p["code"], p["capacity"], p["occupancy"]) for p in props_all(shelters)] == [
        ("CK-SH1", 50, 2)
    ]


def props_all(body: dict) -> list[dict]:
    return [f["properties"] for f in body["features"]]


def test_layers_are_capped(
    client: TestClient, world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert len(layer(client, "cases", DISTRICT)["features"]) == 7
    monkeypatch.setattr(layers, "MAX_FEATURES", 2)
    r = client.get("/api/v1/cockpit/layers/cases", params={"region": DISTRICT}).json()
    assert r["truncated"] is True and r["limit"] == 2
    open_cases = [c for c in world.cases.values() if c.state in OPEN]
    newest = sorted(open_cases, key=lambda c: (c.created_at, c.id), reverse=True)
    assert props(r, "code") == [c.code for c in newest[:2]]


def test_rates_agree_with_the_evaluation(
    client: TestClient, session: Session, world: World
) -> None:
    """The same counts as 综合评价 over the same period and place."""
    s = summary(client, region=YIHE)["rates"]
    since, until = (datetime.fromisoformat(s[k]) for k in ("since", "until"))
    (town,) = evaluation.evaluate(session, since, until, group="town", scope=YIHE)
    assert (s["dispatched"], s["closed"], s["closed_on_time"]) == (
        town.counts["dispatched"],
        town.counts["closed"],
        town.counts["closed_on_time"],
    )
    assert s["closure_rate"] == town.rates["closure_rate"]


def test_days_are_local_midnights() -> None:
    """Days of the display zone, also across a DST change (Berlin's spring-forward day)."""
    now = datetime.fromisoformat("2026-03-30T10:00:00+00:00")
    bounds = day_bounds(now, ZoneInfo("Europe/Berlin"), 3)
    local = [b.astimezone(ZoneInfo("Europe/Berlin")) for b in bounds]
    assert [d.isoformat() for d in local] == [
        "2026-03-28T00:00:00+01:00",
        "2026-03-29T00:00:00+01:00",
        "2026-03-30T00:00:00+02:00",
        "2026-03-31T00:00:00+02:00",
    ]
    shanghai = day_bounds(now, ZoneInfo("Asia/Shanghai"), 30)
    assert len(shanghai) == 31 and shanghai[-1].isoformat() == "2026-03-30T16:00:00+00:00"
