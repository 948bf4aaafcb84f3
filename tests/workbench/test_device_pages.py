"""The workbench's device pages through the browser-less client: the list with each sensor's
status, last report and newest values, filtered by type and status; a device's page with its
values, open alarms and curves; and who may see which device."""

from __future__ import annotations

import json
import re
from datetime import timedelta
from urllib.parse import quote

from fastapi.testclient import TestClient
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from cityops.alarms import rules
from cityops.db import utcnow
from cityops.geo.models import Region
from cityops.telemetry import service as tsvc
from cityops.telemetry.ingest import ingest
from cityops.telemetry.models import Device, Latest
from tests.workbench.test_alarm_pages import PersonFor

G1 = "500154024003001"  # demo-grid's grid
ELSEWHERE = "5001540250"  # another town's villages and grids begin so


def grid(session: Session, prefix: str) -> Region:
    found = session.scalars(
        select(Region).where(Region.level == "grid", Region.code.like(f"{prefix}%"))
    ).first()
    assert found is not None
    return found


def add(session: Session, code: str, kind: str, place: Region) -> None:
    tsvc.create_device(
        session,
        tsvc.DeviceInput(
            code=code,
            type=kind,
            name=f"页面测试 {kind}",
            lat=place.center_lat,
            lon=place.center_lon,
        ),
        utcnow(),
    )


def listed(html: str) -> set[str]:
    return set(re.findall(r'data-device="([^"]+)"', html))


def test_the_device_list_and_a_device_page(
    anon: TestClient, person: PersonFor, session: Session
) -> None:
    now = utcnow()
    tsvc.load_types(session, tsvc.default_types(), now)
    home, far = grid(session, G1), grid(session, ELSEWHERE)
    add(session, "WBD-HYD-1", "hydrant", home)
    add(session, "WBD-RAIN-1", "rain", home)  # never reports
    add(session, "WBD-FAR-1", "hydrant", far)
    rules.upsert(
        session,
        {
            "code": "wbd-low",
            "name": "管网低压（页面测试）",
            "kind": "threshold",
            "scope": "device",
            "scope_value": "WBD-HYD-1",
            "metric": "pressure_mpa",
            "params": {"op": "below", "value": 0.1},
            "severity": "major",
        },
        now,
    )
    start = int(now.timestamp() * 1000) - 30 * 60_000
    values = [0.31, 0.3, 0.29, 0.05]
    batch = [
        {"device": "WBD-HYD-1", "metric": "pressure_mpa", "ts": start + i * 300_000, "value": v}
        for i, v in enumerate(values)
    ]
    ingest(session, batch, now)

    for path in ("/workbench/devices", "/workbench/devices/WBD-HYD-1"):
        r = anon.get(path, follow_redirects=False)
        assert r.status_code == 303 and r.headers["location"] == f"/login?next={quote(path)}"

    shift = person("demo-shift")
    page = shift.get("/workbench/devices")
    assert page.status_code == 200
    assert {"WBD-HYD-1", "WBD-RAIN-1", "WBD-FAR-1"} <= listed(page.text)
    assert 'href="/workbench/devices" aria-current="page"' in page.text or re.search(
        r'aria-current="page"[^>]*>[^<]*监测设备', page.text
    )
    row = page.text.split('data-device="WBD-HYD-1"')[1].split("</tr>")[0]
    assert "在线" in row and '管网压力 <b class="num">0.05</b> MPa' in row
    rain = page.text.split('data-device="WBD-RAIN-1"')[1].split("</tr>")[0]
    assert "离线" in rain and "从未上报" in rain

    online = listed(shift.get("/workbench/devices?status=online").text)
    offline = listed(shift.get("/workbench/devices?status=offline").text)
    assert "WBD-HYD-1" in online and "WBD-HYD-1" not in offline
    assert "WBD-RAIN-1" in offline and "WBD-RAIN-1" not in online
    assert listed(shift.get("/workbench/devices?type=rain").text) >= {"WBD-RAIN-1"}
    assert "WBD-HYD-1" not in listed(shift.get("/workbench/devices?type=rain").text)
    assert listed(shift.get(f"/workbench/devices?region={G1[:12]}").text) >= {
        "WBD-HYD-1",
        "WBD-RAIN-1",
    }
    assert "WBD-FAR-1" not in listed(shift.get(f"/workbench/devices?region={G1[:12]}").text)

    one = shift.get("/workbench/devices/WBD-HYD-1?lang=en")
    assert one.status_code == 200
    assert "Online" in one.text and "管网低压（页面测试）" in one.text  # its open alarm
    found = re.search(
        r'<script type="application/json" id="curve-pressure_mpa-config">(.*?)</script>', one.text
    )
    assert found, "no curve of the device's metric"
    curve = json.loads(found.group(1))
    assert [p[3] for p in curve["points"]] == values and curve["unit"] == "MPa"
    assert (
        "No readings in the last 24 hours"
        in shift.get("/workbench/devices/WBD-RAIN-1?lang=en").text
    )

    # Silent for longer than its type's interval (a hydrant's is an hour): offline.
    hydrant = session.scalars(select(Device).where(Device.code == "WBD-HYD-1")).one()
    session.execute(
        update(Latest)
        .where(Latest.device_id == hydrant.id)
        .values(received_at=now - timedelta(minutes=61))
    )
    assert "WBD-HYD-1" in listed(shift.get("/workbench/devices?status=offline").text)
    assert "WBD-HYD-1" not in listed(shift.get("/workbench/devices?status=online").text)

    # A grid worker sees the devices of their own grid only.
    grid_worker = person("demo-grid")
    assert {"WBD-HYD-1", "WBD-RAIN-1"} <= listed(grid_worker.get("/workbench/devices").text)
    assert "WBD-FAR-1" not in listed(grid_worker.get("/workbench/devices").text)
    assert grid_worker.get("/workbench/devices/WBD-FAR-1").status_code == 404
    assert shift.get("/workbench/devices/NO-SUCH").status_code == 404
