"""HTTP ingestion and device APIs: keys per device and per group, partial acceptance, limits,
series and latest values, online / offline status."""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from cityops.db import utcnow
from cityops.demo import district
from cityops.telemetry.models import DeviceType, Reading
from tests.telemetry.conftest import Kit


def now_ms(minutes: float = 0) -> int:
    return int((utcnow() + timedelta(minutes=minutes)).timestamp() * 1000)


def test_device_key_posts_for_its_device_only(
    client: TestClient, anon: TestClient, session: Session, kit: Kit
) -> None:
    g = kit.codes["gnss"]
    r = client.post(f"/api/v1/devices/{g}/api-keys", json={})
    assert r.status_code == 201, r.text
    key = {"X-API-Key": r.json()["key"]}
    assert r.json()["restrict"] == {"device": g}
    batch = [
        {"device": g, "metric": "disp_mm", "ts": now_ms(-2), "value": 3.2},
        {"device": g, "ts": now_ms(-1), "values": {"disp_mm": 3.4, "disp_v_mm": -0.2}},
        {"device": kit.codes["rain"], "metric": "rain_mm", "ts": now_ms(-1), "value": 1.0},
        {"device": g, "metric": "disp_mm", "ts": now_ms(-1), "value": float("inf")},
    ]
    body = __import__("json").dumps(batch)  # Infinity is what a careless device sends
    r = anon.post("/api/v1/telemetry", content=body, headers=key)
    assert r.status_code == 200, r.text
    out = r.json()
    assert (out["received"], out["stored"], out["rejected_count"]) == (4, 3, 2)
    assert {(x["index"], x["reason"]) for x in out["rejected"]} == {
        (2, "forbidden_device"),
        (3, "not_finite"),
    }
    assert session.scalar(select(func.count()).select_from(Reading)) == 3


def test_group_key_covers_the_gateway_devices(
    client: TestClient, anon: TestClient, kit: Kit
) -> None:
    r = client.post("/api/v1/device-groups/T-GW/api-keys", json={"name": "边坡网关"})
    key = {"X-API-Key": r.json()["key"]}
    batch = [
        {"device": kit.codes["gnss"], "metric": "disp_mm", "ts": now_ms(-1), "value": 1.0},
        {"device": kit.codes["crack"], "metric": "crack_mm", "ts": now_ms(-1), "value": 2.0},
        {"device": kit.codes["hydrant"], "metric": "pressure_mpa", "ts": now_ms(-1), "value": 0.3},
    ]
    out = anon.post("/api/v1/telemetry", json=batch, headers=key).json()
    assert out["stored"] == 2 and out["rejected"][0]["reason"] == "forbidden_device"


def test_bad_bodies_get_clear_errors(
    anon: TestClient, credentials: dict[str, str], kit: Kit
) -> None:
    key = {"X-API-Key": credentials["(API key)"]}
    r = anon.post("/api/v1/telemetry", content=b"{not json", headers=key)
    assert r.status_code == 422 and r.json()["error"]["fields"][0]["field"] == "body"
    r = anon.post("/api/v1/telemetry", json="hello", headers=key)
    assert r.status_code == 422
    too_many = [{"device": "x", "metric": "m", "ts": 1, "value": 1}] * 10_001
    r = anon.post("/api/v1/telemetry", json=too_many, headers=key)
    assert r.status_code == 413 and "10000" in r.json()["error"]["message"]
    # One reading as an object is a batch of one.
    one = {"device": kit.codes["rain"], "metric": "rain_mm", "ts": now_ms(-1), "value": 0.5}
    assert anon.post("/api/v1/telemetry", json=one, headers=key).json()["stored"] == 1


def test_people_cannot_post_readings(
    login: Callable[[str], dict[str, str]], anon: TestClient
) -> None:
    r = anon.post("/api/v1/telemetry", json=[], headers=login("demo-admin"))
    assert r.status_code == 403


def test_the_caller_is_checked_before_the_body(anon: TestClient) -> None:
    """The body is parsed before the transaction begins, but a caller without a key hears
    only that, whatever it sent."""
    for body in (b"{not json", b'"hello"', b"[]"):
        r = anon.post("/api/v1/telemetry", content=body, headers={"X-API-Key": "wrong"})
        assert r.status_code == 401, body
        assert anon.post("/api/v1/telemetry", content=body).status_code == 401


def test_devices_series_and_latest(
    client: TestClient,
    anon: TestClient,
    credentials: dict[str, str],
    kit: Kit,
    session: Session,
) -> None:
    key = {"X-API-Key": credentials["(API key)"]}
    g = kit.codes["gnss"]
    batch = [
        {"device": g, "metric": "disp_mm", "ts": now_ms(-60 + i), "value": float(i)}
        for i in range(60)
    ]
    assert anon.post("/api/v1/telemetry", json=batch, headers=key).json()["stored"] == 60

    devices = client.get("/api/v1/devices", params={"site": "T-SITE"}).json()
    status = {d["code"]: d["online"] for d in devices["items"]}
    assert status == {g: True, kit.codes["rain"]: False, kit.codes["crack"]: False}
    offline = client.get("/api/v1/devices", params={"status": "offline", "site": "T-SITE"})
    assert {d["code"] for d in offline.json()["items"]} == {kit.codes["rain"], kit.codes["crack"]}
    # One device's page decides the same way the list does.
    one = client.get(f"/api/v1/devices/{g}").json()
    assert (one["online"], one["group"]) == (True, "T-GW") and one["last_seen"]
    rain = client.get(f"/api/v1/devices/{kit.codes['rain']}").json()
    assert (rain["online"], rain["group"], rain["last_seen"]) == (False, None, None)
    assert client.patch(f"/api/v1/devices/{g}", json={"active": False}).json()["online"] is False

    start = (utcnow() - timedelta(minutes=61)).isoformat()
    end = utcnow().isoformat()
    r = client.get(
        f"/api/v1/devices/{g}/series",
        params={"metric": "disp_mm", "from": start, "to": end, "points": 10, "resolution": "raw"},
    )
    assert r.status_code == 200, r.text
    points = r.json()["points"]
    assert sum(p["n"] for p in points) == 60 and len(points) <= 10
    assert points[-1]["last"] == 59.0
    r = client.get(
        f"/api/v1/devices/{g}/series", params={"metric": "disp_mm", "from": end, "to": start}
    )
    assert r.status_code == 422 and r.json()["error"]["fields"][0]["field"] == "to"
    # A metric the device neither declares nor has reported is named as the error, with the
    # ones it has; one it reported, though its type no longer declares it, still has a series.
    r = client.get(
        f"/api/v1/devices/{g}/series", params={"metric": "disp_m", "from": start, "to": end}
    )
    assert r.status_code == 422 and r.json()["error"]["fields"][0]["field"] == "metric"
    assert "disp_mm" in r.json()["error"]["message"]
    session.execute(
        update(DeviceType).where(DeviceType.code == "gnss").values(metrics=[{"name": "x"}])
    )
    r = client.get(
        f"/api/v1/devices/{g}/series", params={"metric": "disp_mm", "from": start, "to": end}
    )
    assert r.status_code == 200 and sum(p["n"] for p in r.json()["points"]) == 60

    latest = client.get("/api/v1/telemetry/latest", params={"device": g}).json()
    assert latest[0]["values"][0]["value"] == 59.0
    area = client.get("/api/v1/telemetry/latest", params={"region": kit.grid.code[:9]}).json()
    assert g in {d["device"] for d in area}


def test_register_and_edit_devices(client: TestClient, kit: Kit) -> None:
    body = {
        "code": "T-NOISE-1",
        "type": "noise",
        "name": "工地噪声",
        "lat": kit.grid.center_lat,
        "lon": kit.grid.center_lon,
        "site": "T-SITE",
    }
    r = client.post("/api/v1/devices", json=body)
    assert r.status_code == 201 and r.json()["region_code"] == kit.grid.code
    assert client.post("/api/v1/devices", json=body).status_code == 409
    r = client.post("/api/v1/devices", json=body | {"code": "T-2", "type": "nope"})
    assert r.status_code == 422 and r.json()["error"]["fields"][0]["field"] == "type"
    r = client.post("/api/v1/devices", json=body | {"code": "T-3", "lat": 40.0})
    assert r.status_code == 422  # outside the district
    r = client.patch("/api/v1/devices/T-NOISE-1", json={"active": False, "name": "停用"})
    assert r.json()["active"] is False and r.json()["name"] == "停用"
    assert client.get("/api/v1/devices/NOPE").status_code == 404
    types = client.get("/api/v1/device-types").json()
    assert {"gnss", "rain", "bus_gps"} <= {t["code"] for t in types}


def hold(monkeypatch: pytest.MonkeyPatch, name: str) -> tuple[threading.Event, threading.Event]:
    """The telemetry route's call of ``name`` held until released: (reached, release)."""
    from cityops.telemetry import api as telemetry_api

    reached, release = threading.Event(), threading.Event()
    real = getattr(telemetry_api, name)

    def held(*args: Any, **kwargs: Any) -> Any:
        reached.set()
        release.wait(10)
        return real(*args, **kwargs)

    monkeypatch.setattr(telemetry_api, name, held)
    return reached, release


def test_a_batch_being_stored_does_not_hold_up_other_requests(
    client: TestClient, anon: TestClient, kit: Kit, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A batch is stored outside the server's event loop: while one is held mid-store, the
    same server still answers other requests."""
    key = {"X-API-Key": client.post("/api/v1/device-groups/T-GW/api-keys", json={}).json()["key"]}
    storing, release = hold(monkeypatch, "store_checked")
    batch = [{"device": kit.codes["gnss"], "metric": "disp_mm", "ts": now_ms(-1), "value": 1.0}]
    with ThreadPoolExecutor(1) as pool:
        posted = pool.submit(anon.post, "/api/v1/telemetry", json=batch, headers=key)
        try:
            assert storing.wait(10)
            assert anon.get("/healthz").status_code == 200
            answered_meanwhile = not posted.done()
        finally:
            release.set()
        assert posted.result().json()["stored"] == 1
    assert answered_meanwhile


def test_a_batch_is_checked_before_sqlite_s_write_lock_is_taken(
    tmp_path: Path, small_demo: district.DemoDistrict, monkeypatch: pytest.MonkeyPatch
) -> None:
    """On a database of its own (the other tests' requests share one connection): while a
    batch is being checked, another writer — a second server process storing its batch — can
    take the write lock; the key's use is then recorded with the batch's writes."""
    from cityops.app import create_app
    from cityops.auth.models import ApiKey
    from cityops.demo import accounts as demo_accounts
    from tests.conftest import own_demo_database

    path = tmp_path / "cityops.db"
    settings, engine, key = own_demo_database(path, small_demo)
    checking, release = hold(monkeypatch, "check_readings")
    batch = [{"device": "NO-SUCH-DEVICE", "metric": "level_m", "ts": now_ms(-1), "value": 1.0}]
    with (
        TestClient(create_app(settings, engine=engine)) as http,
        ThreadPoolExecutor(1) as pool,
    ):
        posted = pool.submit(http.post, "/api/v1/telemetry", json=batch, headers={"X-API-Key": key})
        other = sqlite3.connect(path, timeout=0.5, isolation_level=None)
        try:
            assert checking.wait(10)
            other.execute("BEGIN IMMEDIATE")  # "database is locked" if the lock were held
            other.execute("ROLLBACK")
        finally:
            other.close()
            release.set()
        r = posted.result()
    assert r.status_code == 200, r.text
    assert r.json()["rejected"][0]["reason"] == "unknown_device"
    with Session(engine) as s:
        used = s.scalar(
            select(ApiKey.last_used_at).where(ApiKey.name == demo_accounts.DEMO_DEVICE_KEY)
        )
    assert used is not None
    engine.dispose()


def test_with_a_folder_beside_it_the_route_leaves_folding_to_it_and_tells_it(
    app: FastAPI, client: TestClient, anon: TestClient, session: Session, kit: Kit
) -> None:
    """``cityops serve`` runs a folder: a batch is stored without folding, and the folder
    hears that readings were stored (so it catches up soon after the last batch)."""
    from cityops.telemetry import fold

    class Told:
        times = 0

        def stored(self) -> None:
            self.times += 1

    app.state.folder = folder = Told()
    key = {"X-API-Key": client.post("/api/v1/device-groups/T-GW/api-keys", json={}).json()["key"]}
    batch = [
        {"device": kit.codes["gnss"], "metric": "disp_mm", "ts": now_ms(-2), "value": 1.0},
        {"device": kit.codes["gnss"], "metric": "disp_mm", "ts": now_ms(-1), "value": 2.0},
    ]
    before = fold.pending(session)
    assert anon.post("/api/v1/telemetry", json=batch, headers=key).json()["stored"] == 2
    assert folder.times == 1
    assert fold.pending(session) == before + 2  # left for the folder
    again = anon.post("/api/v1/telemetry", json=batch, headers=key).json()
    assert (again["stored"], again["duplicates"]) == (0, 2)
    assert folder.times == 1  # nothing new stored: nothing to tell
