"""The workbench's alarm pages through their forms (no browser): the list's filters and its
"to acknowledge" queue, the forms each person may use on an alarm in its state, an
acknowledgement that records who, and refusals that say why and change nothing."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from urllib.parse import quote

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select
from sqlalchemy.orm import Session

from cityops.alarms.models import Alarm, AlarmEvent, AlarmRule, RuleState
from cityops.db import utcnow
from tests.workbench.conftest import Person

PersonFor = Callable[[str], Person]
G1 = "500154024003001"  # demo-grid's grid
ELSEWHERE = "500154025001001"  # another town: outside demo-grid's area


@dataclass
class Alarms:
    active: Alarm  # critical, condition present, not acknowledged (G1)
    latched: Alarm  # minor, latched, condition gone, acknowledged: may be cleared by hand
    closed: Alarm
    shelved: Alarm
    far: Alarm  # not acknowledged, in another town


@pytest.fixture
def alarms(session: Session) -> Alarms:
    now = utcnow()
    rules = {}
    for code, severity, latch in (
        ("wb-t-pressure", "critical", False),
        ("wb-t-level", "minor", True),
    ):
        rule = AlarmRule(
            code=code,
            name=f"测试规则 {code}",
            kind="threshold",
            scope="device_type",
            scope_value="hydrant",
            metric="pressure_mpa",
            params={"op": "below", "value": 0.1, "clear": 0.14},
            severity=severity,
            latch=latch,
        )
        session.add(rule)
        rules[code] = rule
    session.flush()

    def alarm(token: str, rule: str, region: str, **kw: object) -> Alarm:
        fields: dict[str, object] = {
            "rule_id": rules[rule].id,
            "source": f"device:{token}",
            "severity": rules[rule].severity,
            "condition": "active",
            "acked": False,
            "count": 2,
            "message": f"{token} 压力 0.05 MPa",
            "value": 0.05,
            "region_code": region,
            "first_seen": now - timedelta(hours=2),
            "last_seen": now - timedelta(minutes=5),
            "updated_at": now,
        } | kw
        a = Alarm(**fields)
        session.add(a)
        session.flush()
        session.add(
            AlarmEvent(
                alarm_id=a.id,
                at=a.first_seen,
                action="raised",
                actor_kind="system",
                actor_name="规则引擎 / rules",
                note=str(a.message),
                data={"value": 0.05},
            )
        )
        return a

    made = Alarms(
        active=alarm("WB-ALPHA", "wb-t-pressure", G1),
        latched=alarm(
            "WB-BRAVO",
            "wb-t-level",
            G1,
            severity="minor",
            acked=True,
            acked_by="值班员甲",
            acked_at=now,
        ),
        closed=alarm(
            "WB-CHARLIE",
            "wb-t-pressure",
            G1,
            severity="major",
            condition="cleared",
            acked=True,
            cleared_at=now,
            closed_at=now,
        ),
        shelved=alarm("WB-DELTA", "wb-t-pressure", G1, shelved_until=now + timedelta(hours=1)),
        far=alarm("WB-ECHO", "wb-t-pressure", ELSEWHERE),
    )
    # The rule still sees the active alarm's condition; the latched one's has gone away.
    session.add(RuleState(rule_id=rules["wb-t-pressure"].id, source="device:WB-ALPHA", active=True))
    session.add(RuleState(rule_id=rules["wb-t-level"].id, source="device:WB-BRAVO", active=False))
    session.flush()
    return made


TOKENS = ("WB-ALPHA", "WB-BRAVO", "WB-CHARLIE", "WB-DELTA", "WB-ECHO")


def listed(html: str) -> set[str]:
    rows = re.findall(r'<tr class="alarm-row[^"]*" data-alarm="\d+">.*?</tr>', html, re.S)
    return {token for token in TOKENS for row in rows if token in row}


def forms(html: str, alarm: Alarm) -> set[str]:
    return set(re.findall(rf'action="/workbench/alarms/{alarm.id}/(\w+)"', html))


def test_the_list_and_its_filters(anon: TestClient, person: PersonFor, alarms: Alarms) -> None:
    for path in ("/workbench/alarms?acked=false", f"/workbench/alarms/{alarms.active.id}"):
        r = anon.get(path, follow_redirects=False)
        assert r.status_code == 303 and r.headers["location"] == f"/login?next={quote(path)}"

    shift = person("demo-shift")
    queue = shift.get("/workbench/alarms?acked=false")  # the nav's "告警待确认"
    assert queue.status_code == 200
    assert listed(queue.text) == {"WB-ALPHA", "WB-ECHO"}  # open, unacknowledged, not shelved
    assert re.search(r'aria-current="page" data-queue="alarms"', queue.text)
    assert 'class="sev sev-critical"' in queue.text and "报警中" in queue.text

    cases = {
        "state=closed": {"WB-CHARLIE"},
        "state=all&severity=minor": {"WB-BRAVO"},
        "shelved=true": {"WB-DELTA"},
        "acked=true": {"WB-BRAVO"},
        "acked=false&region=500154024": {"WB-ALPHA"},
        "state=all": {"WB-ALPHA", "WB-BRAVO", "WB-CHARLIE", "WB-ECHO"},
    }
    for query, expected in cases.items():
        assert listed(shift.get(f"/workbench/alarms?{query}").text) == expected, query

    # A grid worker sees the alarms of their own grid only (and may not act on them).
    grid = person("demo-grid").get("/workbench/alarms?state=all&lang=en")
    assert listed(grid.text) == {"WB-ALPHA", "WB-BRAVO", "WB-CHARLIE"}
    assert "Not acknowledged" in grid.text
    assert person("demo-grid").get(f"/workbench/alarms/{alarms.far.id}").status_code == 404


def test_forms_follow_the_state_and_an_ack_records_who(
    person: PersonFor, alarms: Alarms, session: Session
) -> None:
    shift = person("demo-shift")
    a = alarms.active
    page = shift.get(f"/workbench/alarms/{a.id}")
    assert page.status_code == 200 and "WB-ALPHA 压力 0.05 MPa" in page.text
    assert forms(page.text, a) == {
        "ack",
        "comment",
        "assign",
        "shelve",
    }  # the condition is still there: no clear
    assert forms(shift.get(f"/workbench/alarms/{alarms.latched.id}").text, alarms.latched) == {
        "clear",
        "comment",
        "assign",
        "shelve",
    }
    assert "unshelve" in forms(
        shift.get(f"/workbench/alarms/{alarms.shelved.id}").text, alarms.shelved
    )
    assert forms(shift.get(f"/workbench/alarms/{alarms.closed.id}").text, alarms.closed) == {
        "comment"
    }

    leader = person("demo-leader")  # may look, may not act
    looked = leader.get(f"/workbench/alarms/{a.id}")
    assert looked.status_code == 200 and forms(looked.text, a) == set()
    assert "由值班人员办理" in looked.text
    refused = leader.submit(f"/workbench/alarms/{a.id}/ack")
    assert refused.status_code == 403 and "由值班人员办理" in refused.text

    # A form without the page's CSRF token is refused, readably, and changes nothing.
    stale = shift.submit(f"/workbench/alarms/{a.id}/ack", {"note": "收到"}, csrf=False)
    assert stale.status_code == 403 and "页面已过期" in stale.text
    assert 'role="alert"' in stale.text and "收到" in stale.text  # the note kept for a retry
    session.expire_all()
    assert a.acked is False

    # Shelving without a reason names the field; nothing is shelved.
    bad = shift.submit(f"/workbench/alarms/{a.id}/shelve", {"minutes": "60", "reason": " "})
    assert bad.status_code == 422 and "搁置原因" in bad.text
    session.expire_all()
    assert a.shelved_until is None

    done = shift.submit(f"/workbench/alarms/{a.id}/ack", {"note": "已通知供水公司"})
    assert done.status_code == 303
    assert done.headers["location"] == f"/workbench/alarms/{a.id}?done=ack"
    name = shift.client.get("/api/v1/auth/me").json()["name"]
    session.expire_all()
    assert a.acked is True and a.acked_by == name
    last = session.scalars(
        select(AlarmEvent).where(AlarmEvent.alarm_id == a.id).order_by(AlarmEvent.id.desc())
    ).first()
    assert last is not None and (last.action, last.actor_name) == ("acked", name)
    assert last.note == "已通知供水公司"

    after = shift.get(done.headers["location"])
    assert "操作成功：确认告警" in after.text and name in after.text
    assert "ack" not in forms(after.text, a)
    again = shift.submit(f"/workbench/alarms/{a.id}/ack")  # e.g. from a tab left open
    assert again.status_code == 409 and "报警已确认" in again.text
    assert a.id not in {
        int(i)
        for i in re.findall(r'data-alarm="(\d+)"', shift.get("/workbench/alarms?acked=false").text)
    }


def test_a_sensor_alarm_shows_its_curve_with_the_rule_lines(
    person: PersonFor, alarms: Alarms, session: Session
) -> None:
    """A sensor's alarm page draws the watched metric from hours before the alarm until now,
    with the rule's alarm and clear lines and the moment it was raised — and says the same
    in words; an alarm from no single sensor has no curve."""
    import json

    from cityops.alarms import rules
    from cityops.geo.models import Region
    from cityops.telemetry import service as tsvc
    from cityops.telemetry.ingest import ingest

    grid = session.scalars(
        select(Region).where(Region.level == "grid").order_by(Region.code)
    ).first()
    assert grid is not None
    now = utcnow()
    tsvc.load_types(session, tsvc.default_types(), now)
    tsvc.create_device(
        session,
        tsvc.DeviceInput(
            code="WB-HYD-CURVE",
            type="hydrant",
            name="曲线测试消火栓",
            lat=grid.center_lat,
            lon=grid.center_lon,
        ),
        now,
    )
    rules.upsert(
        session,
        {
            "code": "wb-curve",
            "name": "管网低压",
            "kind": "threshold",
            "scope": "device",
            "scope_value": "WB-HYD-CURVE",
            "metric": "pressure_mpa",
            "params": {"op": "below", "value": 0.1, "clear": 0.14},
            "severity": "major",
        },
        now,
    )
    start = int(now.timestamp() * 1000) - 40 * 60_000
    values = [round(0.3 - i * 0.008, 3) for i in range(25)] + [0.05]  # sinking, then below
    readings = [
        {"device": "WB-HYD-CURVE", "metric": "pressure_mpa", "ts": start + i * 60_000, "value": v}
        for i, v in enumerate(values)
    ]
    raised = ingest(session, readings, now).alarms
    alarm = session.get(Alarm, raised[0])
    assert alarm is not None and alarm.value == 0.05

    page = person("demo-shift").get(f"/workbench/alarms/{alarm.id}")
    assert page.status_code == 200
    found = re.search(
        r'<script type="application/json" id="alarm-curve-config">(.*?)</script>', page.text
    )
    assert found, "no curve on a sensor alarm's page"
    curve = json.loads(found.group(1))
    assert curve["lines"] == [{"kind": "raise", "value": 0.1}, {"kind": "clear", "value": 0.14}]
    assert curve["raised"] == start + 25 * 60_000  # the reading that raised it, not the moment
    assert curve["from"] == curve["raised"] - 6 * 3_600_000  # it was evaluated
    assert curve["unit"] == "MPa" and curve["cleared"] is None
    assert 'href="/workbench/devices/WB-HYD-CURVE"' in page.text  # the sensor's own page
    # The value with its unit and the metric's name in words.
    value = re.search(
        r"<dd class=\"num\">0\.05 MPa <span[^>]*>管网压力 · pressure_mpa</span>", page.text
    )
    assert value, "the alarm's value without its unit and metric"
    # Reported a quarter of an hour after it was taken: the page says when it was taken.
    assert "读数时间" in page.text and "读数迟到" in page.text
    lows, highs, lasts = zip(*[(p[1], p[2], p[3]) for p in curve["points"]], strict=True)
    assert min(lows) == 0.05 and max(highs) == 0.3 and lasts[-1] == 0.05
    summary = re.sub(
        r"\s+", " ", page.text.split('id="alarm-curve-summary"')[1].split("</figcaption>")[0]
    )
    assert "共 26 个读数" in summary and "最新 0.05 MPa" in summary
    assert "报警线 0.1 MPa，解除线 0.14 MPa" in summary

    other = person("demo-shift").get(f"/workbench/alarms/{alarms.active.id}")
    assert other.status_code == 200 and "alarm-curve-config" not in other.text
    assert "读数时间" not in other.text  # evaluated when it was taken
