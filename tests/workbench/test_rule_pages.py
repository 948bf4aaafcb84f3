"""The alarm rules page: every rule in words — threshold with its clear line and duration, rate
of change over its window, silence, composite — in Chinese and English, with its open alarms
in the person's area."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy.orm import Session

from cityops.alarms import rules
from cityops.alarms.models import Alarm
from cityops.db import utcnow
from tests.workbench.test_alarm_pages import PersonFor

G1 = "500154024003001"  # demo-grid's grid
ELSEWHERE = "500154025001001"


def rule(session: Session, code: str, kind: str, params: dict[str, Any], **extra: Any) -> Any:
    data = {
        "code": code,
        "name": f"规则页 {code}",
        "kind": kind,
        "scope": "device_type",
        "scope_value": "hydrant",
        "metric": "pressure_mpa",
        "params": params,
        "severity": "major",
    }
    return rules.upsert(session, data | extra, utcnow())


def row(html: str, code: str) -> str:
    return re.sub(r"\s+", " ", html.split(f'data-rule="{code}"')[1].split("</tr>")[0])


def test_rules_in_words_with_their_open_alarms(
    anon: TestClient, person: PersonFor, session: Session
) -> None:
    low = rule(
        session,
        "rp-low",
        "threshold",
        {"op": "below", "value": 0.1, "clear": 0.14, "duration_s": 120},
        open_case=True,
        case_urgency="urgent",
    )
    rule(
        session,
        "rp-rise",
        "rate",
        {"op": "above", "value": 10, "window_s": 3600},
        metric="disp_mm",
        scope_value="gnss",
    )
    rule(session, "rp-quiet", "no_data", {"after_s": 7200}, metric=None)
    rule(
        session,
        "rp-slope",
        "composite",
        {
            "conditions": [
                {"metric": "disp_mm", "op": "above", "value": 30},
                {"metric": "rain_mm", "op": "above", "value": 20},
            ],
            "fresh_s": 1800,
        },
        metric=None,
        scope="site",
        scope_value="T-SITE",
        enabled=False,
    )
    now = utcnow()
    for token, region, closed in (("a", G1, None), ("b", G1, now), ("c", ELSEWHERE, None)):
        session.add(
            Alarm(
                rule_id=low.id,
                source=f"device:RP-{token}",
                severity="major",
                condition="active",
                acked=False,
                count=1,
                message="压力低",
                value=0.05,
                region_code=region,
                first_seen=now - timedelta(hours=1),
                last_seen=now,
                updated_at=now,
                closed_at=closed,
            )
        )
    session.flush()

    r = anon.get("/workbench/alarm-rules", follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"].startswith("/login?next=")

    shift = person("demo-shift")
    assert "/workbench/alarm-rules" in shift.get("/workbench/alarms").text  # linked
    page = shift.get("/workbench/alarm-rules")
    assert page.status_code == 200
    low_row = row(page.text, "rp-low")
    assert "pressure_mpa &lt; 0.1，回到 ≥ 0.14 解除，持续 2 分钟" in low_row
    assert "紧急" in low_row and low_row.rstrip().endswith(
        'data-label="未关闭告警">2</td>'
    )  # two open
    assert "1 小时内变化：Δdisp_mm &gt; 10" in row(page.text, "rp-rise")
    assert "超过 2 小时 没有数据" in row(page.text, "rp-quiet")
    slope = row(page.text, "rp-slope")
    assert "同一站点 30 分钟内同时：disp_mm &gt; 30；rain_mm &gt; 20" in slope
    assert "已停用" in slope

    grid = person("demo-grid").get("/workbench/alarm-rules?lang=en")
    low_en = row(grid.text, "rp-low")
    assert "pressure_mpa &lt; 0.1, clears at ≥ 0.14 for 2 min" in low_en
    assert low_en.rstrip().endswith('data-label="Open alarms">1</td>')  # only its own grid's
    assert "no data for 2 h" in row(grid.text, "rp-quiet")
