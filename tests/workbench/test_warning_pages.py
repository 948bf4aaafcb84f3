"""The workbench's warning pages through their forms (no browser): a proposal from the risk
point page confirmed and issued by a commander (CAP, evacuation), the steps each person may take
now, refusals (a stale form, someone without the say, a warning in another town) that explain
themselves and change nothing; and in Chromium, the risk point's analysis charts."""

from __future__ import annotations

import re
from collections.abc import Callable
from urllib.parse import quote

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select
from sqlalchemy.orm import Session

from cityops.auth.principal import Who
from cityops.db import utcnow
from cityops.warning import workflow
from cityops.warning.models import CapMessage, Warning, WarningEvent
from tests.warning.conftest import LINJIANG, Zone, zone  # noqa: F401  (the 老沟湾 risk zone)
from tests.warning.test_api import town_commander
from tests.workbench.conftest import Person

PersonFor = Callable[[str], Person]


def steps(html: str, code: str) -> set[str]:
    return set(re.findall(rf'action="/workbench/warnings/{re.escape(code)}/(\w+)"', html))


@pytest.fixture
def lgw(zone: Zone) -> Zone:  # noqa: F811
    return zone


def warning_state(session: Session, code: str) -> tuple[str, str]:
    session.expire_all()
    w = session.scalars(select(Warning).where(Warning.code == code)).one()
    return w.state, w.level


def test_propose_confirm_and_issue_through_the_forms(
    person: PersonFor, lgw: Zone, session: Session
) -> None:
    commander = person("demo-commander")
    point = commander.get("/workbench/risk-points/W-LGW")
    assert point.status_code == 200
    html = point.text
    for chart in ("chart-displacement", "chart-angle", "chart-inverse", "chart-rain-id"):
        assert re.search(rf'id="{chart}" class="chart" role="img" aria-label="[^"]+"', html), chart
    assert 'id="sum-displacement"' in html and "综合研判" in html  # the summary beside them
    assert "/static/wb/analysis.js" in html and "vendor/echarts.min.js" in html
    assert "W-LGW-GNSS-1" in html and "太康村小学" in html and "16 户 47 人" in html
    assert 'action="/workbench/risk-points/W-LGW/propose"' in html

    proposed = commander.submit(
        "/workbench/risk-points/W-LGW/propose", {"level": "yellow", "reason": "坡脚出现新裂缝"}
    )
    assert proposed.status_code == 303
    code = re.search(r"/workbench/warnings/([\w-]+)\?done=propose", proposed.headers["location"])
    assert code, proposed.headers["location"]
    code = code.group(1)

    queue = commander.get("/workbench/warnings?state=proposed")  # the nav's "预警待确认"
    assert f'data-warning="{code}"' in queue.text
    assert re.search(r'aria-current="page" data-queue="warnings"', queue.text)
    assert 'href="/workbench/risk-points/W-LGW"' in queue.text  # and the risk points below

    shown = commander.get(f"/workbench/warnings/{code}")
    assert shown.status_code == 200 and "坡脚出现新裂缝" in shown.text
    assert steps(shown.text, code) == {"confirm", "reject"}

    confirmed = commander.submit(f"/workbench/warnings/{code}/confirm", {"level": "orange"})
    assert confirmed.status_code == 303
    assert warning_state(session, code) == ("confirmed", "orange")
    shown = commander.get(confirmed.headers["location"])
    assert "操作成功：确认预警" in shown.text and steps(shown.text, code) == {"issue", "reject"}

    issued = commander.submit(f"/workbench/warnings/{code}/issue", {"note": "立即组织转移"})
    assert issued.status_code == 303
    assert warning_state(session, code) == ("issued", "orange")
    cap = session.scalars(select(CapMessage).where(CapMessage.identifier.contains(code))).one()
    shown = commander.get(issued.headers["location"])
    assert steps(shown.text, code) == {"update", "lift"}
    assert f'href="/api/v1/cap/{cap.identifier}.xml"' in shown.text
    # Orange opens the evacuation: every threatened person on the board, none out yet.
    assert "转移进行中" in shown.text
    assert re.search(r"合计</th><td[^>]*>16</td><td[^>]*>47</td>", shown.text)
    name = commander.client.get("/api/v1/auth/me").json()["name"]
    history = session.execute(
        select(WarningEvent.action, WarningEvent.who_name)
        .join(Warning, Warning.id == WarningEvent.warning_id)
        .where(Warning.code == code)
        .order_by(WarningEvent.id)
    ).all()
    assert [tuple(h) for h in history] == [
        ("proposed", name),
        ("confirmed", name),
        ("issued", name),
    ]
    english = commander.get(f"/workbench/warnings/{code}?lang=en")
    assert "Orange" in english.text and "Lift" in english.text


def test_refusals_explain_themselves_and_change_nothing(
    anon: TestClient, person: PersonFor, lgw: Zone, session: Session, db_url: str
) -> None:
    for path in ("/workbench/warnings?state=proposed", "/workbench/risk-points/W-LGW"):
        r = anon.get(path, follow_redirects=False)
        assert r.status_code == 303 and r.headers["location"] == f"/login?next={quote(path)}"
    r = anon.post("/workbench/warnings/W-2026-0001/confirm", follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"].startswith("/login?next=")

    warning = workflow.propose(
        session, lgw.point, "red", ["位移加速"], Who("person", "网格员"), utcnow()
    )
    code = warning.code

    stale = person("demo-commander").submit(f"/workbench/warnings/{code}/confirm", csrf=False)
    assert stale.status_code == 403 and "页面已过期" in stale.text
    assert warning_state(session, code) == ("proposed", "red")

    leader = person("demo-leader")  # reads everything, decides nothing
    shown = leader.get(f"/workbench/warnings/{code}")
    assert shown.status_code == 200 and steps(shown.text, code) == set()
    assert "由指挥长决定" in shown.text
    refused = leader.submit(f"/workbench/warnings/{code}/confirm")
    assert refused.status_code == 403 and "由指挥长决定" in refused.text
    assert "/propose" not in leader.get("/workbench/risk-points/W-LGW").text
    assert warning_state(session, code) == ("proposed", "red")

    # A commander of another town neither sees the warning nor can decide it.
    other = town_commander(session, anon, db_url, LINJIANG)
    seen = anon.get(f"/workbench/warnings/{code}", headers=other)
    assert seen.status_code == 404 and "不在您的辖区" in seen.text
    tried = anon.post(f"/workbench/warnings/{code}/confirm", headers=other, follow_redirects=False)
    assert tried.status_code == 404 and "不在您的辖区" in tried.text
    assert code not in anon.get("/workbench/warnings?state=all", headers=other).text
    assert warning_state(session, code) == ("proposed", "red")


# --- in Chromium --------------------------------------------------------------------------
