"""Real GeoReport v2 clients from PyPI, unchanged, against a live server.

``georeport`` (the client the design brief names) reads only: it cannot create requests. So the
write path is driven by ``civicbot``'s ``Open311Client``, a maintained Python 3 GeoReport v2
client whose ``create_request`` posts the specification's form (``api_key``, ``service_code``,
``lat``/``long``, ``attribute[code]`` …). Both are used through their public API only.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest
import requests
from civicbot import Endpoint, HttpError, Open311Client
from civicbot.http import HttpTransport, RateLimiter
from georeport import GeoReport

from tests.open311.conftest import GRID
from tests.web.conftest import LiveServer, live  # noqa: F401  (the project's live server)

pytestmark = pytest.mark.slow


@dataclass(frozen=True)
class District:
    root: str  # the GeoReport root: …/open311/v2
    key: str  # an API key with the open311:post scope
    telemetry_key: str  # one without it
    lat: float
    lon: float


@pytest.fixture(scope="module")
def district(live: LiveServer) -> District:  # noqa: F811
    token = requests.post(
        f"{live.url}/api/v1/auth/token",
        json={"username": "demo-admin", "password": live.credentials["demo-admin"]},
        timeout=10,
    ).json()["access_token"]
    headers = {"Authorization": f"Bearer {token}"}

    def key(*scopes: str) -> str:
        r = requests.post(
            f"{live.url}/api/v1/api-keys",
            json={"name": "Open311 客户端", "scopes": list(scopes)},
            headers=headers,
            timeout=10,
        )
        assert r.status_code == 201, r.text
        return str(r.json()["key"])

    r = requests.get(f"{live.url}/api/v1/regions/{GRID}", headers=headers, timeout=10)
    lon, lat = r.json()["center"]
    return District(f"{live.url}/open311/v2", key("open311:post"), key("telemetry:write"), lat, lon)


def civic(district: District) -> Open311Client:
    endpoint = Endpoint(id="kaizhou", name="开州区", base_url=district.root, write=True)
    # No politeness delay between calls: the server is our own, on the loopback.
    return Open311Client(endpoint, transport=HttpTransport(rate_limiter=RateLimiter(0.0)))


def file_request(district: District, **extra: Any) -> Any:
    prepared = civic(district).create_request(
        "GY02",
        dry_run=False,
        confirm="SEND",
        api_key=district.key,
        validate_remote=True,  # checks the payload against our live service definition
        lat=district.lat,
        lng=district.lon,
        address_string="义和镇太康村6组",
        description="井盖破损松动，车过有响声",
        attributes={"urgency": "urgent", "location_detail": "村委会门口"},
        first_name="小红",
        last_name="张",
        phone="13812345678",
        **extra,
    )
    assert prepared.dry_run is False
    return prepared.response


def test_civicbot_full_cycle(district: District) -> None:
    client = civic(district)
    services = client.list_services()
    assert "GY02" in {s["service_code"] for s in services}
    definition = client.get_service_definition("GY02")
    assert [a["code"] for a in definition["attributes"]][:2] == ["urgency", "location_detail"]

    [created] = file_request(district, media_url="https://img.example.cn/p/1.jpg")
    code, token = created["service_request_id"], created["token"]
    assert len(code) == 15 and token

    fetched = client.get_request(code)
    assert fetched is not None
    assert fetched["service_request_id"] == code and fetched["status"] == "open"
    assert fetched["service_code"] == "GY02" and fetched["media_url"].endswith("/p/1.jpg")
    assert fetched["requested_datetime"].endswith("+08:00")
    assert "13812345678" not in str(fetched) and "张" not in str(fetched)

    assert client.get_token(token) == [{"service_request_id": code, "token": token}]
    listed = client.list_requests(service_code="GY02", status="open")
    assert code in {r["service_request_id"] for r in listed}
    by_id = client.list_requests(service_request_ids=[code])
    assert [r["service_request_id"] for r in by_id] == [code]


def test_civicbot_sees_georeport_errors(district: District) -> None:
    client = civic(district)
    with pytest.raises(HttpError) as refused:
        client.create_request(
            "GY02",
            dry_run=False,
            confirm="SEND",
            api_key=district.telemetry_key,
            lat=district.lat,
            lng=district.lon,
            description="没有权限的密钥",
        )
    assert refused.value.status == 403 and '"code":403' in refused.value.body
    with pytest.raises(HttpError) as outside:
        client.create_request(
            "GY02",
            dry_run=False,
            confirm="SEND",
            api_key=district.key,
            lat=39.9042,
            lng=116.4074,
            description="北京的井盖",
        )
    assert outside.value.status == 400 and "lat,long" in outside.value.body


@pytest.mark.parametrize("fmt", ["json", "xml"])
def test_georeport_reads(district: District, fmt: str) -> None:
    [created] = file_request(district)
    code = created["service_request_id"]
    client = GeoReport(district.root, output_format=fmt)

    services = client.get_service_list()
    assert "GY02" in {s["service_code"] for s in services}
    definition = client.get_service_definition("GY02")
    attributes = definition["attributes"]
    if fmt == "xml":  # xmltodict: <attributes><attribute>… → {"attribute": [...]}
        attributes = attributes["attribute"]
    assert attributes[0]["code"] == "urgency"

    one = client.get_service_request(code)
    assert one["service_request_id"] == code
    assert one["status"] == "open" and one["service_name"] == "井盖破损"
    assert one["requested_datetime"].endswith("+08:00")

    listed = client.get_service_requests(service_code="GY02", status="open")
    listed = [listed] if isinstance(listed, dict) else listed
    assert code in {r["service_request_id"] for r in listed}
    by_id = client.get_service_requests(service_request_id=code)
    by_id = [by_id] if isinstance(by_id, dict) else by_id
    assert [r["service_request_id"] for r in by_id] == [code]


def test_georeport_with_our_jurisdiction_and_errors(district: District) -> None:
    ours = GeoReport(district.root, jurisdiction="500154")
    assert ours.get_service_list()
    with pytest.raises(requests.HTTPError) as other:
        GeoReport(district.root, jurisdiction="chicago.gov").get_service_list()
    assert other.value.response.status_code == 404
    assert other.value.response.json()[0]["code"] == 404
    with pytest.raises(requests.HTTPError) as missing:
        ours.get_service_request("209901010000001")
    assert missing.value.response.status_code == 404
    with pytest.raises(requests.HTTPError) as window:
        ours.get_service_requests(
            start_date="2026-01-01T00:00:00Z", end_date="2026-06-01T00:00:00Z"
        )
    assert window.value.response.status_code == 400
