"""Analytics on a risk point's stored monitoring data: the level and its reasons, the proposal
they make, when a point is due again, and what a commander sees (on SQLite and PostgreSQL)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import numpy as np
from sqlalchemy import select
from sqlalchemy.orm import Session

from cityops.config import Settings
from cityops.telemetry.ingest import ingest
from cityops.warning import analysis, workflow
from cityops.warning.models import Warning, WarningEvent
from tests.warning.conftest import NOW, Zone

HOUR_MS = 3_600_000
NOW_MS = int(NOW.timestamp() * 1000)
DAYS = 40


def gnss(code: str, velocity: Any, spike_at: int | None = None) -> list[dict[str, Any]]:
    """Hourly cumulative displacement for DAYS days ending at NOW; ``velocity(day)`` in mm/day."""
    hours = DAYS * 24
    days = np.arange(hours) / 24.0
    s = np.cumsum([velocity(d) / 24.0 for d in days])
    s += np.random.default_rng(3).normal(0, 0.05, hours)  # a well-behaved station
    out = []
    for i in range(hours):
        value = float(s[i]) + (80.0 if spike_at == i else 0.0)
        out.append(
            {
                "device": code,
                "metric": "disp_mm",
                "ts": NOW_MS - (hours - i) * HOUR_MS,
                "value": round(value, 3),
            }
        )
    return out


def rain(code: str, mm_per_h: float, last_hours: int) -> list[dict[str, Any]]:
    return [
        {"device": code, "metric": "rain_mm", "ts": NOW_MS - h * HOUR_MS, "value": mm_per_h}
        for h in range(last_hours, 0, -1)
    ]


def creep(_day: float) -> float:
    return 0.3


def surge(day: float) -> float:
    """Uniform creep, then five days at 5 mm/day: a tangent angle of about 86.6°."""
    return 0.3 if day < DAYS - 5 else 5.0


def store(session: Session, items: list[dict[str, Any]]) -> None:
    result = ingest(session, items, NOW)
    assert not result.rejected, result.rejected[:3]


def settings() -> Settings:
    return Settings(warning_auto_propose="yellow", warning_window_days=45)


def test_an_accelerating_slope_in_heavy_rain_raises_red_and_proposes(
    session: Session, zone: Zone
) -> None:
    store(session, gnss(zone.devices["gnss"], surge))
    store(session, rain(zone.devices["rain"], 12.0, 48))
    assert [p.code for p in analysis.due(session)] == [zone.point.code]

    assert analysis.run(session, NOW, settings()) == 1
    assert zone.point.level == "red"
    assert any("GNSS-1" in r and "切线角" in r for r in zone.point.level_reasons)
    warning = session.scalars(select(Warning)).one()
    assert (warning.state, warning.source, warning.level) == ("proposed", "analytics", "red")
    assert warning.proposed_by == workflow.ANALYTICS.name

    # Evaluated: not due until a monitor reports something newer.
    assert analysis.due(session) == []
    late = {"device": zone.devices["rain"], "metric": "rain_mm", "ts": NOW_MS - 30 * 86_400_000}
    store(session, [late | {"value": 0.5}])
    assert analysis.due(session) == [], "a late reading of old data does not make it due"
    later = NOW + timedelta(minutes=10)
    result = ingest(
        session,
        [
            {
                "device": zone.devices["gnss"],
                "metric": "disp_mm",
                "ts": int(later.timestamp() * 1000) - 1000,
                "value": 60.0,
            }
        ],
        later,
    )
    assert result.stored == 1
    assert [p.code for p in analysis.due(session)] == [zone.point.code]


def test_steady_creep_stays_calm_and_one_spike_never_raises_orange(
    session: Session, zone: Zone
) -> None:
    store(session, gnss(zone.devices["gnss"], creep, spike_at=DAYS * 24 - 2))
    analysis.run(session, NOW, settings())
    assert zone.point.level in ("none", "blue", "yellow")
    assert session.scalars(select(Warning).where(Warning.level.in_(("orange", "red")))).all() == []


def test_analytics_do_not_repeat_themselves_on_the_history(session: Session, zone: Zone) -> None:
    store(session, gnss(zone.devices["gnss"], surge))
    for minutes in (0, 5, 10):
        evaluation = analysis.evaluate(session, zone.point, NOW, 45)
        analysis.apply(session, evaluation, NOW + timedelta(minutes=minutes), "yellow")
    warning = session.scalars(select(Warning)).one()
    actions = session.scalars(
        select(WarningEvent.action).where(WarningEvent.warning_id == warning.id)
    ).all()
    assert actions == ["proposed"]


def test_a_declined_proposal_is_not_asked_again_at_once(session: Session, zone: Zone) -> None:
    store(session, gnss(zone.devices["gnss"], surge))
    evaluation = analysis.evaluate(session, zone.point, NOW, 45)
    analysis.apply(session, evaluation, NOW, "yellow")
    warning = session.scalars(select(Warning)).one()
    workflow.reject(session, warning, workflow.Who("person", "指挥长"), NOW, "现场核查无异常")
    analysis.apply(session, evaluation, NOW + timedelta(hours=1), "yellow")
    assert session.scalars(select(Warning.state)).all() == ["rejected"]
    # Half a day later the analytics may ask again.
    analysis.apply(session, evaluation, NOW + timedelta(hours=13), "yellow")
    assert sorted(session.scalars(select(Warning.state)).all()) == ["proposed", "rejected"]


def test_the_commanders_pictures(session: Session, zone: Zone) -> None:
    store(session, gnss(zone.devices["gnss"], surge))
    store(session, rain(zone.devices["rain"], 12.0, 48))
    view = analysis.chart_view(analysis.evaluate(session, zone.point, NOW, 45), max_points=500)
    assert view["level"] == "red" and view["reasons"]
    curves = view["displacement"]["GNSS-1"]
    for key in ("v_mm_d", "angle_deg", "levels", "fit"):
        assert key in curves, key
    assert len(curves["angle_deg"]) <= 500
    gauge = view["rainfall"]["RAIN-1"]
    assert gauge["totals_mm"]["72h"] == 12.0 * 48
    assert set(gauge["threshold_curves"]) == {"caine", "guzzetti"}
    assert gauge["current_event"] is not None and gauge["above"] == {
        "caine": True,
        "guzzetti": True,
    }
    bands = [b["level"] for b in view["level_bands"]["tangent_angle_deg"]]
    assert bands == ["blue", "yellow", "orange", "red"]
