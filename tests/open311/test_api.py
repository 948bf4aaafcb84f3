"""Open311 GeoReport v2 through the HTTP API: every endpoint in JSON and XML, the public view of
requests, the 90-day window, filters, date format and GeoReport errors (never a 500)."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from cityops.auth.models import AuditEntry
from cityops.auth.permissions import permissions_of
from cityops.auth.principal import Principal
from cityops.db import utcnow
from cityops.events import intake
from cityops.events.models import Case, State
from cityops.org.models import Unit
from tests.open311.conftest import BASE, GRID, Post, make_key

W3C_LOCAL = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\+08:00$")


def xml(text: str) -> ET.Element:
    return ET.fromstring(text.encode())


def case_of(session: Session, code: str) -> Case:
    case = session.scalar(select(Case).where(Case.code == code))
    assert case is not None
    return case


def n_cases(session: Session) -> int:
    return session.scalar(select(func.count()).select_from(Case)) or 0


def hotline_case(session: Session, **report: Any) -> Case:
    """A case from another channel, straight through intake (as the hotline desk would)."""
    desk = Principal("person", 0, "热线", frozenset({"admin"}), permissions_of({"admin"}), "500154")
    fields = {"description": "路灯不亮", "source": "hotline", "region_code": GRID} | report
    case, _ = intake.report(session, desk, intake.Report(**fields), utcnow())
    return case


def assert_error(r: Any, status: int, *words: str) -> None:
    assert r.status_code == status, r.text
    if r.headers["content-type"].startswith("application/xml"):
        root = xml(r.text)
        assert root.tag == "errors"
        assert root.findtext("error/code") == str(status)
        description = root.findtext("error/description") or ""
    else:
        body = r.json()
        assert isinstance(body, list) and body[0]["code"] == status, body
        description = body[0]["description"]
    for word in words:
        assert word in description, description


# --- services ----------------------------------------------------------------------------------


def test_services_json_lists_active_leaf_categories(anon: TestClient) -> None:
    r = anon.get(f"{BASE}/services.json")
    assert r.status_code == 200 and r.headers["content-type"].startswith("application/json")
    services = r.json()
    by_code = {s["service_code"]: s for s in services}
    assert "GY01" in by_code and "GY" not in by_code  # classes are groups, not services
    gy01 = by_code["GY01"]
    assert set(gy01) == {
        "service_code",
        "service_name",
        "description",
        "metadata",
        "type",
        "keywords",
        "group",
    }
    assert gy01["service_name"] == "井盖缺失" and gy01["group"] == "公用设施"
    assert gy01["metadata"] is True and gy01["type"] == "realtime"
    assert gy01["keywords"].split(",")[:2] == ["井盖", "没有井盖"]
    assert "4" in gy01["description"]  # its time limits


def test_services_xml_is_well_formed_with_spec_element_names(anon: TestClient) -> None:
    r = anon.get(f"{BASE}/services.xml")
    assert r.status_code == 200 and r.headers["content-type"].startswith("application/xml")
    assert r.text.startswith("<?xml")
    root = xml(r.text)
    assert root.tag == "services"
    items = root.findall("service")
    assert len(items) == len(anon.get(f"{BASE}/services.json").json())
    gy01 = next(s for s in items if s.findtext("service_code") == "GY01")
    assert gy01.findtext("service_name") == "井盖缺失"
    assert gy01.findtext("metadata") == "true" and gy01.findtext("type") == "realtime"
    assert gy01.findtext("group") == "公用设施"


def test_inactive_category_is_no_service(client: TestClient, anon: TestClient) -> None:
    assert client.patch("/api/v1/categories/GY11", json={"active": False}).status_code == 200
    codes = {s["service_code"] for s in anon.get(f"{BASE}/services.json").json()}
    assert "GY11" not in codes and "GY10" in codes
    assert_error(anon.get(f"{BASE}/services/GY11.json"), 404, "service_code")


def test_service_definition_json(anon: TestClient) -> None:
    r = anon.get(f"{BASE}/services/GY01.json")
    assert r.status_code == 200
    definition = r.json()
    assert definition["service_code"] == "GY01"
    attrs = {a["code"]: a for a in definition["attributes"]}
    assert list(attrs) == ["urgency", "location_detail", "component_id"]  # GY01 is a component
    urgency = attrs["urgency"]
    assert urgency["datatype"] == "singlevaluelist" and urgency["required"] is False
    assert urgency["variable"] is True and urgency["order"] == 1
    assert [v["key"] for v in urgency["values"]] == ["normal", "urgent"]
    assert attrs["location_detail"]["datatype"] == "string"
    # An event category has no component plate.
    event = anon.get(f"{BASE}/services/SR01.json").json()
    assert [a["code"] for a in event["attributes"]] == ["urgency", "location_detail"]


def test_service_definition_xml(anon: TestClient) -> None:
    r = anon.get(f"{BASE}/services/GY01.xml")
    assert r.status_code == 200
    root = xml(r.text)
    assert root.tag == "service_definition" and root.findtext("service_code") == "GY01"
    attribute = root.find("attributes/attribute")
    assert attribute is not None
    assert attribute.findtext("code") == "urgency"
    assert attribute.findtext("variable") == "true" and attribute.findtext("required") == "false"
    keys = [v.findtext("key") for v in attribute.findall("values/value")]
    assert keys == ["normal", "urgent"]


@pytest.mark.parametrize("code", ["ZZ99", "GY", "gy01", "GY01%20"])
def test_unknown_service_is_a_georeport_404(anon: TestClient, code: str) -> None:
    assert_error(anon.get(f"{BASE}/services/{code}.json"), 404, "service_code")
    assert_error(anon.get(f"{BASE}/services/{code}.xml"), 404, "service_code")


def test_unknown_format_and_jurisdiction(anon: TestClient) -> None:
    assert_error(anon.get(f"{BASE}/services.csv"), 404, ".json or .xml")
    ok = anon.get(f"{BASE}/services.json", params={"jurisdiction_id": "500154"})
    assert ok.status_code == 200
    assert_error(
        anon.get(f"{BASE}/services.xml", params={"jurisdiction_id": "chicago.gov"}),
        404,
        "jurisdiction_id",
    )


# --- posting -----------------------------------------------------------------------------------


def test_post_creates_an_open311_case(
    post: Post, session: Session, point: tuple[float, float]
) -> None:
    r = post(
        **{
            "attribute[urgency]": "urgent",
            "attribute[location_detail]": "太康村村委会门口",
            "attribute[component_id]": "KZ-JG-0042",
            "address_string": "义和镇太康村6组",
            "first_name": "小红",
            "last_name": "张",
            "phone": "13812345678",
            "email": "zhang@example.cn",
            "device_id": "ios-5f2a",
            "account_id": "u-77",
            "media_url": "https://img.example.cn/p/123.jpg",
        }
    )
    assert r.status_code == 201, r.text
    [body] = r.json()
    assert set(body) == {"service_request_id", "token", "service_notice", "account_id"}
    assert re.fullmatch(r"\d{15}", body["service_request_id"])
    assert body["account_id"] is None and body["token"]
    assert "1 小时" in body["service_notice"]  # GY01 urgent: 1 natural hour after dispatch

    case = case_of(session, body["service_request_id"])
    assert case.source == "open311" and case.state == State.reported.value
    assert case.level == "district" and case.urgency == "urgent"
    assert (case.lat, case.lon) == pytest.approx(point)
    assert case.region_code == GRID
    assert case.address == "义和镇太康村6组；太康村村委会门口"
    assert case.reporter_name == "张小红" and case.reporter_phone == "13812345678"
    assert case.description.startswith("井盖不见了，晚上很危险")
    assert (
        "KZ-JG-0042" in case.description and "https://img.example.cn/p/123.jpg" in case.description
    )
    assert case.idempotency_key == f"open311:{body['token']}"
    # Audited as the API key that posted it.
    entry = session.scalar(
        select(AuditEntry).where(
            AuditEntry.entity == "cases",
            AuditEntry.entity_id == str(case.id),
            AuditEntry.action == "create",
        )
    )
    assert entry is not None and entry.actor_kind == "api_key"


def test_post_xml_and_defaults(post: Post, session: Session) -> None:
    r = post("xml", description=None, service_code="SR01")
    assert r.status_code == 201, r.text
    root = xml(r.text)
    assert root.tag == "service_requests"
    code = root.findtext("request/service_request_id")
    assert code and root.findtext("request/token")
    assert root.find("request/account_id") is not None
    case = case_of(session, code)
    # No description: the service name stands in; no urgency attribute: normal.
    assert case.description == "暴露垃圾" and case.urgency == "normal"


def test_token_lookup(anon: TestClient, posted: dict[str, Any]) -> None:
    token, code = posted["token"], posted["service_request_id"]
    r = anon.get(f"{BASE}/tokens/{token}.json")
    assert r.status_code == 200
    assert r.json() == [{"service_request_id": code, "token": token}]
    root = xml(anon.get(f"{BASE}/tokens/{token}.xml").text)
    assert root.tag == "service_requests"
    assert root.findtext("request/service_request_id") == code
    assert root.findtext("request/token") == token
    assert_error(anon.get(f"{BASE}/tokens/not-a-token-at-all.json"), 404, "token")
    assert_error(anon.get(f"{BASE}/tokens/x.xml"), 404, "token")


def test_missing_invalid_and_unscoped_keys(
    post: Post, client: TestClient, session: Session
) -> None:
    before = n_cases(session)
    r = post(api_key=None)
    assert_error(r, 401, "api_key")
    assert_error(post("xml", api_key=None), 401, "api_key")
    assert_error(post(api_key="cok_deadbeef_nottherightsecret"), 403, "api_key")
    assert_error(post(api_key="garbage"), 403, "api_key")
    telemetry_only = make_key(client, "telemetry:write")
    assert_error(post(api_key=telemetry_only), 403, "open311:post")
    revoked = make_key(client, "open311:post")
    key_id = client.get("/api/v1/api-keys").json()[-1]["id"]
    assert client.post(f"/api/v1/api-keys/{key_id}/revoke").status_code == 200
    assert_error(post(api_key=revoked), 403, "api_key")
    assert n_cases(session) == before


@pytest.mark.parametrize(
    ("form", "words"),
    [
        ({"service_code": "ZZ99"}, ["service_code"]),
        ({"service_code": "GY"}, ["service_code"]),
        ({"service_code": None}, ["service_code"]),
        ({"lat": None, "long": None}, ["lat", "long"]),
        ({"lat": None, "long": None, "address_string": "义和镇太康村"}, ["address_string"]),
        ({"long": None}, ["long"]),
        ({"lat": "north"}, ["lat"]),
        ({"long": "nan"}, ["long"]),
        ({"lat": "95"}, ["lat"]),
        ({"lat": "39.9042", "long": "116.4074"}, ["lat,long", "outside"]),  # Beijing
        ({"attribute[urgency]": "asap"}, ["attribute[urgency]", "urgent"]),
        ({"attribute[colour]": "red"}, ["attribute[colour]"]),
        ({"attribute[component_id]": "KZ 42; DROP"}, ["attribute[component_id]"]),
        ({"media_url": "javascript:alert(1)"}, ["media_url"]),
        ({"description": "x" * 2100}, ["description"]),
        ({"phone": "1" * 30}, ["phone"]),
        ({"jurisdiction_id": "elsewhere"}, ["jurisdiction_id"]),
    ],
)
def test_bad_posts_are_georeport_400s(
    post: Post, session: Session, form: dict[str, Any], words: list[str]
) -> None:
    before = n_cases(session)
    r = post(**form)
    assert_error(r, 404 if "jurisdiction_id" in form else 400, *words)
    assert_error(post("xml", **form), 404 if "jurisdiction_id" in form else 400)
    assert n_cases(session) == before


def test_post_must_be_a_form(anon: TestClient, api_key: str) -> None:
    r = anon.post(f"{BASE}/requests.json", json={"api_key": api_key, "service_code": "GY01"})
    assert_error(r, 400, "x-www-form-urlencoded")
    upload = anon.post(
        f"{BASE}/requests.json",
        data={"api_key": api_key, "service_code": "GY01"},
        files={"media": ("p.jpg", b"\xff\xd8\xff", "image/jpeg")},
    )
    assert_error(upload, 400, "media_url")


def test_api_key_may_come_in_the_query_string(
    anon: TestClient, api_key: str, point: tuple[float, float]
) -> None:
    lat, lon = point
    r = anon.post(
        f"{BASE}/requests.json",
        params={"api_key": api_key},
        data={"service_code": "DL01", "lat": lat, "long": lon, "description": "路面坑洼"},
    )
    assert r.status_code == 201, r.text


# --- reading requests --------------------------------------------------------------------------


def test_get_request_json_and_xml_show_no_personal_data(
    anon: TestClient, post: Post, session: Session
) -> None:
    r = post(
        description="井盖丢了，我电话13812345678，身份证500234199001011234，座机023-52212345",
        first_name="小红",
        last_name="张",
        phone="13987654321",
        email="zhang@example.cn",
        address_string="太康村6组",
        media_url="https://img.example.cn/p/9.jpg",
    )
    code = r.json()[0]["service_request_id"]
    one = anon.get(f"{BASE}/requests/{code}.json")
    assert one.status_code == 200
    [req] = one.json()
    assert set(req) == {
        "service_request_id",
        "status",
        "status_notes",
        "service_name",
        "service_code",
        "description",
        "agency_responsible",
        "service_notice",
        "requested_datetime",
        "updated_datetime",
        "expected_datetime",
        "address",
        "lat",
        "long",
        "media_url",
    }
    assert req["service_request_id"] == code and req["status"] == "open"
    assert req["service_code"] == "GY01" and req["service_name"] == "井盖缺失"
    assert req["address"] == "太康村6组" and req["media_url"] == "https://img.example.cn/p/9.jpg"
    assert req["description"] == (
        "井盖丢了，我电话138****5678，身份证500234********1234，座机023-****2345"
    )
    assert req["expected_datetime"] is None and req["agency_responsible"] is None
    for secret in ("张", "小红", "13987654321", "zhang@", "13812345678", "199001011234"):
        assert secret not in one.text
    x = anon.get(f"{BASE}/requests/{code}.xml")
    root = xml(x.text)
    assert root.tag == "service_requests"
    assert root.findtext("request/service_request_id") == code
    assert root.findtext("request/status") == "open"
    assert root.findtext("request/long") == str(req["long"])
    for secret in ("张", "13987654321", "zhang@"):
        assert secret not in x.text


def test_unknown_request_is_a_georeport_404(anon: TestClient) -> None:
    r = anon.get(f"{BASE}/requests/209901010000001.json")
    assert r.status_code == 404
    body = r.json()
    assert body[0]["code"] == 404 and body[0]["description"]
    assert_error(anon.get(f"{BASE}/requests/nope.xml"), 404, "service_request_id")


def test_status_is_only_open_or_closed(
    anon: TestClient, posted: dict[str, Any], session: Session
) -> None:
    code = posted["service_request_id"]
    case = case_of(session, code)
    expected = {
        State.reported: "open",
        State.registered: "open",
        State.dispatched: "open",
        State.handling: "open",
        State.handled: "open",
        State.parked: "open",
        State.closed: "closed",
        State.rejected: "closed",
        State.merged: "closed",
        State.voided: "closed",
    }
    assert set(expected) == set(State)
    for state, status in expected.items():
        case.state = state.value
        session.flush()
        [req] = anon.get(f"{BASE}/requests/{code}.json").json()
        assert req["status"] == status, state
        assert req["status_notes"]
        only = anon.get(f"{BASE}/requests.json", params={"status": status}).json()
        other = anon.get(
            f"{BASE}/requests.json", params={"status": "closed" if status == "open" else "open"}
        ).json()
        assert code in {r["service_request_id"] for r in only}
        assert code not in {r["service_request_id"] for r in other}
    both = anon.get(f"{BASE}/requests.json", params={"status": "open,closed"}).json()
    assert code in {r["service_request_id"] for r in both}
    assert_error(anon.get(f"{BASE}/requests.json", params={"status": "pending"}), 400, "status")


def test_dates_have_the_numeric_local_offset(
    anon: TestClient, posted: dict[str, Any], session: Session
) -> None:
    code = posted["service_request_id"]
    case = case_of(session, code)
    case.deadline_at = datetime(2026, 7, 15, 1, 30, tzinfo=UTC)
    unit = session.scalar(select(Unit).where(Unit.code == "DEPT-08"))
    assert unit is not None
    case.current_unit_id = unit.id
    session.flush()
    r = anon.get(f"{BASE}/requests/{code}.json")
    [req] = r.json()
    assert req["expected_datetime"] == "2026-07-15T09:30:00+08:00"
    assert W3C_LOCAL.match(req["requested_datetime"]) and W3C_LOCAL.match(req["updated_datetime"])
    assert req["agency_responsible"] == unit.name
    created = datetime.fromisoformat(req["requested_datetime"])
    assert abs(created - case.created_at) < timedelta(seconds=1)
    for text in (r.text, anon.get(f"{BASE}/requests.xml").text):
        assert not re.search(r"\d\dZ\b", text) and "+00:00" not in text
    root = xml(anon.get(f"{BASE}/requests/{code}.xml").text)
    assert root.findtext("request/expected_datetime") == "2026-07-15T09:30:00+08:00"
    assert root.findtext("request/agency_responsible") == unit.name


def test_default_window_is_the_last_90_days(anon: TestClient, post: Post, session: Session) -> None:
    old = post(description="去年冬天的井盖问题").json()[0]["service_request_id"]
    new = post(description="今天的井盖问题").json()[0]["service_request_id"]
    case_of(session, old).created_at = utcnow() - timedelta(days=100)
    session.flush()
    listed = [r["service_request_id"] for r in anon.get(f"{BASE}/requests.json").json()]
    assert new in listed and old not in listed
    assert listed.index(new) == 0  # newest first
    # An explicit window (ISO 8601 with Z, with an offset, or dates) finds the old one.
    start = (utcnow() - timedelta(days=110)).strftime("%Y-%m-%dT%H:%M:%SZ")
    end = (utcnow() - timedelta(days=30)).isoformat()
    window = anon.get(f"{BASE}/requests.json", params={"start_date": start, "end_date": end})
    got = [r["service_request_id"] for r in window.json()]
    assert old in got and new not in got
    only_start = anon.get(f"{BASE}/requests.json", params={"start_date": start}).json()
    assert old in {r["service_request_id"] for r in only_start}  # start + 90 days
    # Bare dates are local days, the end date included whole.
    day = case_of(session, old).created_at.astimezone(ZoneInfo("Asia/Shanghai")).date()
    by_day = anon.get(
        f"{BASE}/requests.xml", params={"start_date": day.isoformat(), "end_date": day.isoformat()}
    )
    assert [e.text for e in xml(by_day.text).iter("service_request_id")] == [old]
    # The id filter overrides the window.
    by_id = anon.get(f"{BASE}/requests.json", params={"service_request_id": f"{old},{new}"})
    assert [r["service_request_id"] for r in by_id.json()] == [old, new]


@pytest.mark.parametrize(
    ("params", "field"),
    [
        (
            {"start_date": "2026-01-01T00:00:00+08:00", "end_date": "2026-06-01T00:00:00+08:00"},
            "90",
        ),
        ({"start_date": "2026-01-01", "end_date": "2026-04-01"}, "90"),
        ({"start_date": "2026-06-01T00:00:00Z", "end_date": "2026-05-01T00:00:00Z"}, "start_date"),
        ({"start_date": "yesterday"}, "start_date"),
        ({"end_date": "2026-13-01"}, "end_date"),
        ({"start_date": "2026-07-15T25:00:00"}, "start_date"),
        ({"start_date": "0001-01-01T00:00:00+08:00"}, "start_date"),
        ({"end_date": "0001-01-01"}, "end_date"),
        ({"service_code": "ZZ99"}, "service_code"),
        ({"page_size": "0"}, "page_size"),
        ({"page_size": "lots"}, "page_size"),
        ({"service_request_id": ",".join(str(i) for i in range(101))}, "service_request_id"),
    ],
)
def test_bad_request_queries_are_400(anon: TestClient, params: dict[str, str], field: str) -> None:
    assert_error(anon.get(f"{BASE}/requests.json", params=params), 400, field)
    assert_error(anon.get(f"{BASE}/requests.xml", params=params), 400, field)


def test_window_of_exactly_90_days_is_allowed(anon: TestClient) -> None:
    r = anon.get(
        f"{BASE}/requests.json",
        params={"start_date": "2026-01-01", "end_date": "2026-03-31"},
    )
    assert r.status_code == 200 and r.json() == []


def test_service_code_filter_and_paging(anon: TestClient, post: Post) -> None:
    gy = post(service_code="GY01").json()[0]["service_request_id"]
    sr = post(service_code="SR01").json()[0]["service_request_id"]
    dl = post(service_code="DL01").json()[0]["service_request_id"]
    one = anon.get(f"{BASE}/requests.json", params={"service_code": "SR01"}).json()
    assert {r["service_request_id"] for r in one} == {sr}
    two = anon.get(f"{BASE}/requests.json", params={"service_code": "GY01,DL01"}).json()
    assert {r["service_request_id"] for r in two} >= {gy, dl} and sr not in str(two)
    first = anon.get(f"{BASE}/requests.json", params={"page_size": 1}).json()
    second = anon.get(f"{BASE}/requests.json", params={"page_size": 1, "page": 2}).json()
    assert [r["service_request_id"] for r in first] == [dl]
    assert [r["service_request_id"] for r in second] == [sr]


def test_public_feed_shows_only_what_a_citizen_may_see(
    anon: TestClient, session: Session, posted: dict[str, Any]
) -> None:
    hotline = hotline_case(
        session, category="GY04", reporter_name="李四", reporter_phone="13500001111"
    )
    sensor = hotline_case(session, source="sensor_alarm", category="DZ01")
    unclassified = hotline_case(session)  # no category yet: no service to show it under
    dispute = hotline_case(session, category="SH01", description="与邻居王五因漏水纠纷")
    listed = {r["service_request_id"]: r for r in anon.get(f"{BASE}/requests.json").json()}
    assert posted["service_request_id"] in listed and hotline.code in listed
    assert sensor.code not in listed and unclassified.code not in listed
    for code in (sensor.code, unclassified.code):
        assert_error(anon.get(f"{BASE}/requests/{code}.json"), 404)
    personal = listed[dispute.code]
    assert personal["service_code"] == "SH01" and personal["status"] == "open"
    assert "王五" not in str(personal) and "个人" in personal["description"]
    assert personal["lat"] is None and personal["long"] is None and personal["address"] is None
    assert "李四" not in str(listed) and "13500001111" not in str(listed)
    # Matters of public interest in the same class stay readable.
    food = hotline_case(session, category="SH06", description="小吃店后厨卫生很差")
    [shown] = anon.get(f"{BASE}/requests/{food.code}.json").json()
    assert shown["description"] == "小吃店后厨卫生很差" and shown["lat"] is None  # no point given


def test_only_http_media_urls_come_back(anon: TestClient, session: Session) -> None:
    sneaky = hotline_case(
        session, category="GY04", description="路灯坏了\n附图 / media: javascript:x"
    )
    [req] = anon.get(f"{BASE}/requests/{sneaky.code}.json").json()
    assert req["media_url"] is None and req["description"].endswith("javascript:x")


def test_unparseable_form_is_no_500(anon: TestClient) -> None:
    r = anon.post(
        f"{BASE}/requests.json",
        content=b"--x\r\nbroken",
        headers={"content-type": "multipart/form-data; boundary=x"},
    )
    assert 400 <= r.status_code < 500
    assert isinstance(r.json(), list)


@pytest.mark.parametrize("path", ["requests", "services", "discovery.json", "requests/1/2.json"])
def test_other_paths_are_georeport_404s(anon: TestClient, path: str) -> None:
    assert_error(anon.get(f"{BASE}/{path}"), 404, "unknown endpoint")
    assert_error(anon.post(f"{BASE}/{path}"), 404, "unknown endpoint")


def test_control_characters_are_refused_not_500(
    anon: TestClient, post: Post, session: Session
) -> None:
    """PostgreSQL text cannot hold NUL: it must never reach a query."""
    for path, params in [
        ("services/GY01%00.json", {}),
        ("requests/2026%00.xml", {}),
        ("tokens/abcdefgh%00.json", {}),
        ("requests.json", {"service_code": "GY01\x00"}),
        ("requests.json", {"service_request_id": "202607150000001\x00"}),
        ("requests.json", {"status\x00": "open"}),
    ]:
        assert_error(anon.get(f"{BASE}/{path}", params=params), 400, "control characters")
    before = n_cases(session)
    assert_error(post(description="井盖\x00没了"), 400, "description")
    assert_error(post(**{"attribute[location_detail]": "门口\x07"}), 400, "control characters")
    assert_error(post(service_code="GY01\x00"), 400, "service_code")
    assert n_cases(session) == before
