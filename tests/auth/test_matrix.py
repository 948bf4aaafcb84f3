"""The authorization matrix, generated from the app's own route table.

Every route is either in PUBLIC or guarded by ``Require``; a new route that is neither fails
here, and a guarded route without an example request fails too, so new routes are covered.
For each guarded route: no credentials → 401; each demo principal lacking a required permission
→ 403; each principal holding them → neither 401 nor 403, and the first person with the
permission succeeds (2xx).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.routing import iter_route_contexts
from fastapi.testclient import TestClient
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from cityops.auth.deps import Require
from cityops.auth.models import Account, ApiKey, AuditEntry
from cityops.auth.permissions import ROLE_PERMISSIONS, Permission, permissions_of
from cityops.auth.principal import Principal, Who
from cityops.db import utcnow
from cityops.events import attachments, intake, routing
from cityops.notify.models import Message
from cityops.org.roles import Role
from tests.conftest import bearer

PUBLIC = {
    ("GET", "/"),  # redirects to /login when signed out
    ("GET", "/login"),
    ("POST", "/login"),
    ("POST", "/logout"),
    ("GET", "/healthz"),
    ("GET", "/readyz"),
    ("POST", "/api/v1/auth/login"),
    ("POST", "/api/v1/auth/token"),
    ("POST", "/api/v1/auth/refresh"),
    ("GET", "/auth/oidc/login"),
    ("GET", "/auth/oidc/callback"),
    # Open311 GeoReport v2: reads are public by the specification (they show only what any citizen
    # may see); POST is authenticated by the spec's api_key form field, checked in the service.
    ("GET", "/open311/v2/services.{fmt}"),
    ("GET", "/open311/v2/services/{service_code}.{fmt}"),
    ("POST", "/open311/v2/requests.{fmt}"),
    ("GET", "/open311/v2/requests.{fmt}"),
    ("GET", "/open311/v2/requests/{service_request_id}.{fmt}"),
    ("GET", "/open311/v2/tokens/{token}.{fmt}"),
    ("GET", "/open311/v2/{path:path}"),  # any other path: a GeoReport 404
    ("POST", "/open311/v2/{path:path}"),
    # Issued warnings are for everyone: CAP 1.2 documents and the Atom feed of active ones.
    ("GET", "/api/v1/cap/{identifier}.xml"),
    ("GET", "/feeds/warnings.atom"),
    ("GET", "/cockpit"),  # a page: redirects to /login when signed out, says 403 without rights
    # The pocket command room: pages redirect to /login when signed out; the manifest and the
    # service worker are the installable app's shell and hold no data.
    ("GET", "/m"),
    ("GET", "/m/"),
    ("GET", "/m/tasks"),
    ("GET", "/m/report"),
    ("GET", "/m/alerts"),
    ("GET", "/m/manifest.webmanifest"),
    ("GET", "/m/sw.js"),
    ("GET", "/m/api/session"),  # any signed-in caller (401 otherwise): who am I, my CSRF token
    # The workbench: pages redirect to /login when signed out and say 403 without the right; its
    # forms check the session's CSRF token and the permission in the page (tests/workbench).
    ("GET", "/workbench"),
    ("POST", "/workbench/bulk-dispatch"),
    ("GET", "/workbench/cases/{code}"),
    ("POST", "/workbench/cases/{code}/actions/{action}"),
    ("GET", "/workbench/new"),
    ("POST", "/workbench/new"),
    ("GET", "/workbench/evaluation"),
    # The workbench's alarm and warning pages (the same: login redirect, CSRF and permission
    # checked in the page; tests/workbench/test_alarm_pages.py, test_warning_pages.py).
    ("GET", "/workbench/alarms"),
    ("GET", "/workbench/alarms/{alarm_id}"),
    ("GET", "/workbench/devices"),
    ("GET", "/workbench/alarm-rules"),
    ("GET", "/workbench/devices/{code}"),
    ("POST", "/workbench/alarms/{alarm_id}/{action}"),
    ("GET", "/workbench/warnings"),
    ("GET", "/workbench/warnings/{code}"),
    ("POST", "/workbench/warnings/{code}/{action}"),
    ("GET", "/workbench/risk-points/{code}"),
    ("POST", "/workbench/risk-points/{code}/propose"),
}
DOCS = {"/openapi.json", "/docs", "/docs/oauth2-redirect", "/redoc"}

GRID = "500154024003001"  # demo-grid's own grid, inside every other demo scope too
DEMO_ROLES = {
    "demo-admin": Role.admin,
    "demo-commander": Role.district_commander,
    "demo-leader": Role.leader,
    "demo-shift": Role.shift_leader,
    "demo-intake": Role.intake_operator,
    "demo-dispatcher": Role.dispatcher,
    "demo-town": Role.dispatcher,
    "demo-handler": Role.handler,
    "demo-inspector": Role.inspector,
    "demo-grid": Role.grid_worker,
    "demo-citizen": Role.citizen,
}
DEVICE = "(API key)"
# A real 1×1 lossless WebP.
MATRIX_WEBP = (
    b"RIFF\x1a\x00\x00\x00WEBPVP8L\r\x00\x00\x00/\x00\x00\x00\x10\x07\x10\x11\x11"
    b"\x88\x88\xfe\x07\x00"
)


@dataclass(frozen=True)
class Call:
    path: str
    params: dict[str, Any] = field(default_factory=dict)
    json: Any = None
    files: Any = None


Ids = dict[str, int]
# (method, route path) → the request to make, given ids and the caller's password.
EXAMPLES: dict[tuple[str, str], Callable[[Ids, str], Call]] = {
    ("GET", "/api/v1/regions"): lambda i, p: Call("/api/v1/regions", {"level": "town"}),
    ("GET", "/api/v1/regions/{code}"): lambda i, p: Call("/api/v1/regions/500154024"),
    ("GET", "/api/v1/regions/{code}/children.geojson"): lambda i, p: Call(
        "/api/v1/regions/500154024/children.geojson"
    ),
    ("GET", "/api/v1/locate"): lambda i, p: Call("/api/v1/locate", {"lat": 31.16, "lon": 108.39}),
    ("GET", "/api/v1/units"): lambda i, p: Call("/api/v1/units", {"kind": "department"}),
    ("GET", "/api/v1/people"): lambda i, p: Call("/api/v1/people"),
    ("GET", "/api/v1/regions/{code}/on-duty"): lambda i, p: Call(f"/api/v1/regions/{GRID}/on-duty"),
    ("GET", "/api/v1/auth/me"): lambda i, p: Call("/api/v1/auth/me"),
    ("POST", "/api/v1/auth/logout"): lambda i, p: Call("/api/v1/auth/logout"),
    ("POST", "/api/v1/auth/logout-everywhere"): lambda i, p: Call("/api/v1/auth/logout-everywhere"),
    ("POST", "/api/v1/auth/password"): lambda i, p: Call(
        "/api/v1/auth/password",
        json={"current_password": p, "new_password": "Xk7-river-lantern-82"},
    ),
    ("GET", "/api/v1/users"): lambda i, p: Call("/api/v1/users"),
    ("POST", "/api/v1/users"): lambda i, p: Call(
        "/api/v1/users",
        json={
            "name": "新同事",
            "roles": ["dispatcher"],
            "region_code": "500154024",
            "unit_code": "TC-500154024",
            "username": "matrix-new",
            "password": "Xk7-river-lantern-82",
        },
    ),
    ("GET", "/api/v1/users/{account_id}"): lambda i, p: Call(f"/api/v1/users/{i['citizen']}"),
    ("PATCH", "/api/v1/users/{account_id}"): lambda i, p: Call(
        f"/api/v1/users/{i['citizen']}", json={"name": "改名群众"}
    ),
    ("POST", "/api/v1/users/{account_id}/reset-password"): lambda i, p: Call(
        f"/api/v1/users/{i['citizen']}/reset-password"
    ),
    ("POST", "/api/v1/users/{account_id}/unlock"): lambda i, p: Call(
        f"/api/v1/users/{i['citizen']}/unlock"
    ),
    ("POST", "/api/v1/users/{account_id}/logout-everywhere"): lambda i, p: Call(
        f"/api/v1/users/{i['citizen']}/logout-everywhere"
    ),
    ("GET", "/api/v1/api-keys"): lambda i, p: Call("/api/v1/api-keys"),
    ("POST", "/api/v1/api-keys"): lambda i, p: Call(
        "/api/v1/api-keys", json={"name": "水位计网关", "scopes": ["telemetry:write"]}
    ),
    ("POST", "/api/v1/api-keys/{key_id}/revoke"): lambda i, p: Call(
        f"/api/v1/api-keys/{i['key']}/revoke"
    ),
    ("GET", "/api/v1/audit"): lambda i, p: Call("/api/v1/audit", {"limit": 5}),
    ("POST", "/api/v1/cases"): lambda i, p: Call(
        "/api/v1/cases", json={"description": "路灯不亮", "region_code": GRID, "category": "GY02"}
    ),
    ("GET", "/api/v1/cases"): lambda i, p: Call("/api/v1/cases"),
    ("GET", "/api/v1/cases/{code}"): lambda i, p: Call(f"/api/v1/cases/{i['case']}"),
    ("POST", "/api/v1/cases/{code}/actions/{action}"): lambda i, p: Call(
        f"/api/v1/cases/{i['case']}/actions/register", json={"category": "GY02"}
    ),
    ("GET", "/api/v1/cases/{code}/routing"): lambda i, p: Call(
        f"/api/v1/cases/{i['case']}/routing"
    ),
    ("GET", "/api/v1/categories"): lambda i, p: Call("/api/v1/categories"),
    ("GET", "/api/v1/evaluation"): lambda i, p: Call("/api/v1/evaluation", {"group": "town"}),
    ("GET", "/api/v1/routing-rules"): lambda i, p: Call("/api/v1/routing-rules"),
    ("POST", "/api/v1/routing-rules"): lambda i, p: Call(
        "/api/v1/routing-rules",
        json={"level": "district", "unit_code": "DEPT-10", "category_code": "GY", "note": "路灯"},
    ),
    ("DELETE", "/api/v1/routing-rules/{rule_id}"): lambda i, p: Call(
        f"/api/v1/routing-rules/{i['rule']}"
    ),
    ("GET", "/api/v1/evaluation.csv"): lambda i, p: Call("/api/v1/evaluation.csv"),
    ("GET", "/api/v1/evaluation.xlsx"): lambda i, p: Call("/api/v1/evaluation.xlsx"),
    ("GET", "/api/v1/notifications"): lambda i, p: Call("/api/v1/notifications"),
    ("POST", "/api/v1/notifications/{message_id}/read"): lambda i, p: Call(
        f"/api/v1/notifications/{i['message']}/read"
    ),
    ("PATCH", "/api/v1/categories/{code}"): lambda i, p: Call(
        "/api/v1/categories/GY02", json={"limit_normal_h": 30}
    ),
    ("GET", "/api/v1/audit.csv"): lambda i, p: Call("/api/v1/audit.csv"),
    ("POST", "/api/v1/attachments"): lambda i, p: Call(  # a real 1×1 lossless WebP
        "/api/v1/attachments",
        files={
            "file": (
                "matrix.webp",
                b"RIFF\x1a\x00\x00\x00WEBPVP8L\r\x00\x00\x00/\x00\x00\x00\x10\x07\x10\x11\x11"
                b"\x88\x88\xfe\x07\x00",
                "image/webp",
            )
        },
    ),
    ("GET", "/api/v1/attachments/{attachment_id}"): lambda i, p: Call(
        f"/api/v1/attachments/{i['attachment']}"
    ),
    # Sensors and alarms.
    ("POST", "/api/v1/telemetry"): lambda i, p: Call(
        "/api/v1/telemetry",
        json=[{"device": "M-HYD-A", "metric": "pressure_mpa", "ts": i["ts"], "value": 0.3}],
    ),
    ("GET", "/api/v1/device-types"): lambda i, p: Call("/api/v1/device-types"),
    ("PUT", "/api/v1/device-types"): lambda i, p: Call(
        "/api/v1/device-types",
        json={"types": [{"code": "m-type", "name": "测试", "metrics": [{"name": "v"}]}]},
    ),
    ("GET", "/api/v1/device-groups"): lambda i, p: Call("/api/v1/device-groups"),
    ("POST", "/api/v1/device-groups"): lambda i, p: Call(
        "/api/v1/device-groups", json={"code": "M-GW-2", "name": "网关"}
    ),
    ("GET", "/api/v1/devices"): lambda i, p: Call("/api/v1/devices"),
    ("POST", "/api/v1/devices"): lambda i, p: Call(
        "/api/v1/devices",
        json={"code": "M-NEW", "type": "noise", "name": "噪声", "lat": i["lat"], "lon": i["lon"]},
    ),
    ("GET", "/api/v1/devices/{code}"): lambda i, p: Call("/api/v1/devices/M-HYD-A"),
    ("PATCH", "/api/v1/devices/{code}"): lambda i, p: Call(
        "/api/v1/devices/M-HYD-A", json={"model": "PX-2"}
    ),
    ("POST", "/api/v1/devices/{code}/api-keys"): lambda i, p: Call(
        "/api/v1/devices/M-HYD-A/api-keys", json={}
    ),
    ("POST", "/api/v1/device-groups/{code}/api-keys"): lambda i, p: Call(
        "/api/v1/device-groups/M-GW/api-keys", json={}
    ),
    ("GET", "/api/v1/devices/{code}/series"): lambda i, p: Call(
        "/api/v1/devices/M-HYD-A/series",
        {"metric": "pressure_mpa", "from": "2026-01-01T00:00:00+08:00", "to": i["to"]},
    ),
    ("GET", "/api/v1/telemetry/latest"): lambda i, p: Call(
        "/api/v1/telemetry/latest", {"device": "M-HYD-A"}
    ),
    ("GET", "/api/v1/alarm-rules"): lambda i, p: Call("/api/v1/alarm-rules"),
    ("POST", "/api/v1/alarm-rules"): lambda i, p: Call(
        "/api/v1/alarm-rules",
        json={
            "code": "m-new",
            "name": "测试",
            "kind": "no_data",
            "scope": "device_type",
            "scope_value": "noise",
            "params": {"after_s": 600},
            "severity": "minor",
        },
    ),
    ("GET", "/api/v1/alarm-rules/{code}"): lambda i, p: Call("/api/v1/alarm-rules/m-low"),
    ("PATCH", "/api/v1/alarm-rules/{code}"): lambda i, p: Call(
        "/api/v1/alarm-rules/m-low", json={"severity": "major"}
    ),
    ("GET", "/api/v1/alarms"): lambda i, p: Call("/api/v1/alarms"),
    ("GET", "/api/v1/alarms/{alarm_id}"): lambda i, p: Call(f"/api/v1/alarms/{i['alarm']}"),
    ("POST", "/api/v1/alarms/{alarm_id}/ack"): lambda i, p: Call(
        f"/api/v1/alarms/{i['alarm']}/ack", json={"note": "收到"}
    ),
    ("POST", "/api/v1/alarms/{alarm_id}/clear"): lambda i, p: Call(
        f"/api/v1/alarms/{i['latched']}/clear", json={}
    ),
    ("POST", "/api/v1/alarms/{alarm_id}/comment"): lambda i, p: Call(
        f"/api/v1/alarms/{i['alarm']}/comment", json={"note": "跟进"}
    ),
    ("POST", "/api/v1/alarms/{alarm_id}/assign"): lambda i, p: Call(
        f"/api/v1/alarms/{i['alarm']}/assign", json={"person_id": None}
    ),
    ("POST", "/api/v1/alarms/{alarm_id}/shelve"): lambda i, p: Call(
        f"/api/v1/alarms/{i['alarm']}/shelve", json={"minutes": 10, "reason": "检修"}
    ),
    ("POST", "/api/v1/alarms/{alarm_id}/unshelve"): lambda i, p: Call(
        f"/api/v1/alarms/{i['alarm']}/unshelve", json={}
    ),
    ("GET", "/api/v1/feed"): lambda i, p: Call("/api/v1/feed"),
    # timeout=0: the backlog, then the stream ends (a test client reads a response to its end).
    ("GET", "/api/v1/stream"): lambda i, p: Call("/api/v1/stream", {"after": 0, "timeout": 0}),
    ("GET", "/m/api/cases"): lambda i, p: Call("/m/api/cases"),
    # The digital cockpit, on demo-grid's grid (inside every demo scope).
    ("GET", "/api/v1/cockpit/summary"): lambda i, p: Call(
        "/api/v1/cockpit/summary", {"region": GRID}
    ),
    ("GET", "/api/v1/cockpit/layers/{layer}"): lambda i, p: Call(
        "/api/v1/cockpit/layers/cases", {"region": GRID}
    ),
    # Landslide early warning: M-RP-P has no warning, M-RP-A's is proposed, M-RP-B's confirmed,
    # M-RP-C's issued red (evacuating household M-HH-1); see _warnings.
    ("GET", "/api/v1/risk-points"): lambda i, p: Call("/api/v1/risk-points"),
    ("POST", "/api/v1/risk-points"): lambda i, p: Call(
        "/api/v1/risk-points",
        json={
            "code": "M-RP-NEW",
            "name": "新滑坡",
            "lat": i["lat"],
            "lon": i["lon"],
            "zone": _square(i["lat"], i["lon"] - 0.004),  # type: ignore[arg-type]
        },
    ),
    ("GET", "/api/v1/risk-points/{code}"): lambda i, p: Call("/api/v1/risk-points/M-RP-P"),
    ("PATCH", "/api/v1/risk-points/{code}"): lambda i, p: Call(
        "/api/v1/risk-points/M-RP-P", json={"route": "沿村道向北"}
    ),
    ("GET", "/api/v1/risk-points/{code}/households"): lambda i, p: Call(
        "/api/v1/risk-points/M-RP-C/households"
    ),
    ("GET", "/api/v1/risk-points/{code}/analysis"): lambda i, p: Call(
        "/api/v1/risk-points/M-RP-P/analysis"
    ),
    ("POST", "/api/v1/risk-points/{code}/evaluate"): lambda i, p: Call(
        "/api/v1/risk-points/M-RP-P/evaluate"
    ),
    ("GET", "/api/v1/shelters"): lambda i, p: Call("/api/v1/shelters"),
    ("POST", "/api/v1/shelters"): lambda i, p: Call(
        "/api/v1/shelters",
        json={"code": "M-SH-NEW", "name": "村小", "lat": i["lat"], "lon": i["lon"], "capacity": 50},
    ),
    ("POST", "/api/v1/households"): lambda i, p: Call(
        "/api/v1/households",
        json={
            "code": "M-HH-NEW",
            "head_name": "张三",
            "address": "太康村1组",
            "lat": i["lat"],
            "lon": i["lon"],
            "persons": 3,
        },
    ),
    ("GET", "/api/v1/households/{code}"): lambda i, p: Call("/api/v1/households/M-HH-1"),
    ("PATCH", "/api/v1/households/{code}"): lambda i, p: Call(
        "/api/v1/households/M-HH-1", json={"note": "有行动不便老人"}
    ),
    ("GET", "/api/v1/warnings"): lambda i, p: Call("/api/v1/warnings"),
    ("POST", "/api/v1/warnings"): lambda i, p: Call(
        "/api/v1/warnings", json={"risk_point": "M-RP-P", "level": "yellow", "reason": "巡查"}
    ),
    ("GET", "/api/v1/warnings/{code}"): lambda i, p: Call(f"/api/v1/warnings/{i['issued']}"),
    ("POST", "/api/v1/warnings/{code}/confirm"): lambda i, p: Call(
        f"/api/v1/warnings/{i['proposed']}/confirm", json={}
    ),
    ("POST", "/api/v1/warnings/{code}/reject"): lambda i, p: Call(
        f"/api/v1/warnings/{i['proposed']}/reject", json={"note": "误报"}
    ),
    ("POST", "/api/v1/warnings/{code}/issue"): lambda i, p: Call(
        f"/api/v1/warnings/{i['confirmed']}/issue", json={}
    ),
    ("POST", "/api/v1/warnings/{code}/update"): lambda i, p: Call(
        f"/api/v1/warnings/{i['issued']}/update", json={"note": "持续"}
    ),
    ("POST", "/api/v1/warnings/{code}/lift"): lambda i, p: Call(
        f"/api/v1/warnings/{i['issued']}/lift", json={"note": "解除"}
    ),
    ("GET", "/api/v1/warnings/{code}/evacuation"): lambda i, p: Call(
        f"/api/v1/warnings/{i['issued']}/evacuation"
    ),
    ("GET", "/api/v1/warnings/{code}/evacuation/tasks"): lambda i, p: Call(
        f"/api/v1/warnings/{i['issued']}/evacuation/tasks"
    ),
    ("GET", "/api/v1/warnings/{code}/evacuation/households"): lambda i, p: Call(
        f"/api/v1/warnings/{i['issued']}/evacuation/households"
    ),
    ("POST", "/api/v1/warnings/{code}/evacuation/households/{household}"): lambda i, p: Call(
        f"/api/v1/warnings/{i['issued']}/evacuation/households/M-HH-1", json={"status": "notified"}
    ),
}
WARNING_ROUTES = (
    "/api/v1/risk-points",
    "/api/v1/shelters",
    "/api/v1/households",
    "/api/v1/warnings",
)


def guarded_routes(app: FastAPI) -> dict[tuple[str, str], frozenset[Permission] | None]:
    """(method, path) → the permissions its Require dependencies ask for (None: unguarded)."""
    found: dict[tuple[str, str], frozenset[Permission] | None] = {}
    for route in iter_route_contexts(app.routes):  # flattens included routers
        dependant = getattr(route, "dependant", None)
        if dependant is None or route.path in DOCS:
            continue
        needs: set[Permission] | None = None
        stack = list(dependant.dependencies)
        while stack:
            dep = stack.pop()
            if isinstance(dep.call, Require):
                needs = (needs or set()) | dep.call.permissions
            stack.extend(dep.dependencies)
        for method in route.methods or ():
            if method != "HEAD":
                found[(method, route.path)] = frozenset(needs) if needs is not None else None
    return found


def test_every_route_is_public_by_decision_or_guarded(app: FastAPI) -> None:
    routes = guarded_routes(app)
    unguarded = {key for key, needs in routes.items() if needs is None}
    assert unguarded == PUBLIC, "a route is neither guarded by Require nor listed as public"
    guarded = {key for key, needs in routes.items() if needs is not None}
    assert guarded == set(EXAMPLES), "every guarded route needs an example request here"


# Routes whose domain rules may still refuse a caller holding the route's permission: acting on
# a case depends on its state, the caller's level and assignment, not only on the role.
DOMAIN_REFUSALS = {("POST", "/api/v1/cases/{code}/actions/{action}")}


def _ids(session: Session, attachments_dir: Path) -> Ids:
    citizen = session.scalar(select(Account.id).where(Account.username == "demo-citizen"))
    key = session.scalar(select(ApiKey.id).order_by(ApiKey.id).limit(1))
    assert citizen and key
    reporter = Principal(
        "person", 0, "热线", frozenset({"admin"}), permissions_of({"admin"}), "500154"
    )
    case, _new = intake.report(
        session, reporter, intake.Report("路灯不亮", source="hotline", region_code=GRID), utcnow()
    )
    with attachments.BlobWriter(attachments_dir, 1 << 20) as writer:
        writer.write(MATRIX_WEBP)
        blob = writer.finish()
    attachment = attachments.store(session, reporter, blob, "matrix.webp")
    attachments.link(session, case, [attachment.id], reporter)
    admin_person = session.scalar(select(Account.person_id).where(Account.username == "demo-admin"))
    message = Message(
        dedupe_key="matrix:inapp",
        channel="inapp",
        person_id=admin_person,
        template="t",
        text="测试",
    )
    session.add(message)
    rule, _unit = routing.add_rule(
        session, level="district", unit_code="DEPT-08", category_code="DZ"
    )
    session.flush()
    sensors = _sensors(session)
    return sensors | {
        "citizen": citizen,
        "key": key,
        "case": int(case.code or 0),
        "attachment": attachment.id,
        "message": message.id,
        "rule": rule.id,
    }


def _sensors(session: Session) -> Ids:
    """Two hydrant sensors in GRID, a latched low-pressure rule: M-HYD-A in alarm (shelved),
    M-HYD-B in alarm with its pressure back to normal (a person may clear it)."""
    from datetime import timedelta

    from cityops.alarms import rules
    from cityops.alarms import service as alarms
    from cityops.geo.models import Region
    from cityops.telemetry import service as devices
    from cityops.telemetry.directory import DIRECTORY
    from cityops.telemetry.ingest import ingest

    now = utcnow()
    grid = session.scalar(select(Region).where(Region.code == GRID))
    assert grid is not None
    devices.load_types(session, devices.default_types(), now)
    devices.create_group(session, "M-GW", "网关")
    for code in ("M-HYD-A", "M-HYD-B"):
        devices.create_device(
            session,
            devices.DeviceInput(code, "hydrant", code, grid.center_lat, grid.center_lon),
            now,
        )
    DIRECTORY.invalidate()
    rules.upsert(
        session,
        {
            "code": "m-low",
            "name": "压力低",
            "kind": "threshold",
            "scope": "device_type",
            "scope_value": "hydrant",
            "metric": "pressure_mpa",
            "params": {"op": "below", "value": 0.1},
            "severity": "critical",
            "latch": True,
        },
        now,
    )
    stamp = int((now - timedelta(minutes=5)).timestamp() * 1000)
    readings = [
        {"device": "M-HYD-A", "metric": "pressure_mpa", "ts": stamp, "value": 0.01},
        {"device": "M-HYD-B", "metric": "pressure_mpa", "ts": stamp, "value": 0.01},
        {"device": "M-HYD-B", "metric": "pressure_mpa", "ts": stamp + 60_000, "value": 0.3},
    ]
    first, latched = ingest(session, readings, now).alarms[:2]
    reader = Principal("person", 0, "值班", frozenset({"admin"}), permissions_of({"admin"}), "")
    alarms.shelve(session, alarms.get(session, first), reader, now, 30, "检修")
    session.flush()
    return {
        "alarm": first,
        "latched": latched,
        "ts": stamp + 120_000,
        "lat": grid.center_lat,  # type: ignore[dict-item]
        "lon": grid.center_lon,  # type: ignore[dict-item]
        "to": now.isoformat(),  # type: ignore[dict-item]
    }


def _square(lat: float, lon: float, half: float = 0.0005) -> dict[str, Any]:
    ring = [[lon - half, lat - half], [lon + half, lat - half], [lon + half, lat + half]]
    return {"type": "Polygon", "coordinates": [[*ring, [lon - half, lat + half]]]}


def _warnings(session: Session, lat: float, lon: float) -> Ids:
    """Four risk points in GRID, one per workflow state (see EXAMPLES), a shelter and a household
    in the zone of the issued red warning."""
    from cityops.warning import service as registry
    from cityops.warning import workflow
    from cityops.warning.schemas import HouseholdIn, RiskPointIn, ShelterIn

    now = utcnow()
    registry.create_shelter(
        session, ShelterIn(code="M-SH", name="村委会", lat=lat, lon=lon, capacity=100), now
    )
    points = {}
    for k, suffix in enumerate("PABC"):
        centre = lon + 0.0015 * k
        points[suffix] = registry.create_point(
            session,
            RiskPointIn(
                code=f"M-RP-{suffix}",
                name=f"测试滑坡{suffix}",
                lat=lat,
                lon=centre,
                zone=_square(lat, centre),
                shelters=["M-SH"],
            ),
            now,
        )
        assert points[suffix].region_code == GRID
    household = HouseholdIn(
        code="M-HH-1", head_name="李四", address="太康村", lat=lat, lon=points["C"].lon, persons=2
    )
    registry.create_household(session, household, now)
    who, publishing = Who("person", "测试"), workflow.Publishing()
    ids: dict[str, Any] = {}
    for suffix, state in (("A", "proposed"), ("B", "confirmed"), ("C", "issued")):
        warning = workflow.propose(session, points[suffix], "red", ["测试"], who, now)
        if state != "proposed":
            workflow.confirm(session, warning, who, now)
        if state == "issued":
            workflow.issue(session, warning, who, now, publishing)
        ids[state] = warning.code
    session.flush()
    return ids


def _principal_permissions(name: str) -> frozenset[Permission]:
    if name == DEVICE:
        return frozenset({Permission.telemetry_write})  # the demo device key's scope
    return ROLE_PERMISSIONS[DEMO_ROLES[name]]


@pytest.mark.sqlite_only
@pytest.mark.parametrize("route", sorted(EXAMPLES), ids=lambda r: f"{r[0]} {r[1]}")
def test_route_authorization(
    route: tuple[str, str],
    app: FastAPI,
    anon: TestClient,
    credentials: dict[str, str],
    session: Session,
    tmp_path: Path,
) -> None:
    method, _path = route
    needs = guarded_routes(app)[route]
    assert needs is not None
    app.state.settings = app.state.settings.model_copy(update={"attachments_dir": tmp_path / "att"})
    ids = _ids(session, app.state.settings.attachments_dir)
    if _path.startswith(WARNING_ROUTES):
        ids |= _warnings(session, ids["lat"], ids["lon"])

    def send(headers: dict[str, str], password: str = "") -> int:
        call = EXAMPLES[route](ids, password)
        return anon.request(
            method,
            call.path,
            params=call.params,
            json=call.json,
            files=call.files,
            headers=headers,
        ).status_code

    assert send({}) == 401, "no credentials must be 401"
    assert send({"Authorization": "Bearer not-a-token"}) == 401

    principals = [*DEMO_ROLES, DEVICE]
    headers = {
        name: (
            {"X-API-Key": credentials[DEVICE]}
            if name == DEVICE
            else bearer(anon, name, credentials[name])
        )
        for name in principals
    }
    allowed = [n for n in principals if needs <= _principal_permissions(n)]
    refused = [n for n in principals if n not in allowed]
    for name in refused:
        assert send(headers[name], credentials.get(name, "")) == 403, f"{name} must be refused"
    assert allowed, f"no role may call {route}"
    first_person = next((n for n in allowed if n != DEVICE), None)
    for name in allowed:
        logged = _audit_count(session)
        status = send(headers[name], credentials.get(name, ""))
        if route in DOMAIN_REFUSALS and name != first_person:
            assert status != 401 and status < 500, f"{name}: {status}"
            continue
        assert status not in (401, 403), f"{name} must be allowed, got {status}"
        if name == first_person:
            assert 200 <= status < 300, f"{name}: {status}"
            if method != "GET" or route == ("GET", "/api/v1/audit.csv"):
                # Every write (and every export) leaves at least one audit entry.
                assert _audit_count(session) > logged, f"{route} wrote nothing to the audit log"


def _audit_count(session: Session) -> int:
    return session.scalar(select(func.count()).select_from(AuditEntry)) or 0
