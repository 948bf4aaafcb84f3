"""Run the landslide analytics on a risk point's monitors and keep its level current.

Displacement monitors are read as hourly series (the last value of each hour from the 1-hour
roll-ups), rain gauges as hourly totals; ``displacement``, ``rainfall`` and ``decision`` do the
science. A point is re-evaluated when one of its monitors has reported since its last
evaluation; a level at or above the configured one proposes a warning (the commander decides).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import numpy as np
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from cityops.live import service as live
from cityops.telemetry.models import Latest, Rollup1h
from cityops.warning import decision, displacement, rainfall, workflow
from cityops.warning import service as registry
from cityops.warning.models import LEVEL_RANK, RiskPoint, RiskPointMonitor, Warning

DAY_MS = 86_400_000


@dataclass
class Evaluation:
    point: RiskPoint
    displacements: dict[str, displacement.DisplacementResult]
    rain: dict[str, rainfall.RainfallResult]
    decision: decision.Decision


def _hourly(
    session: Session, device_id: int, metric: str, since_ms: int, until_ms: int, total: bool
) -> tuple[np.ndarray, np.ndarray]:
    # Rain amounts are stamped at the end of their interval: the hour's last reading.
    value = Rollup1h.vsum if total else Rollup1h.last_value
    stamp = Rollup1h.last_ts
    rows = session.execute(
        select(stamp, value)
        .where(
            Rollup1h.device_id == device_id,
            Rollup1h.metric == metric,
            Rollup1h.bucket >= since_ms,
            Rollup1h.bucket <= until_ms,
        )
        .order_by(Rollup1h.bucket)
    ).all()
    if not rows:
        return np.empty(0, dtype=np.int64), np.empty(0, dtype=float)
    t = np.fromiter((r[0] for r in rows), dtype=np.int64, count=len(rows))
    v = np.fromiter((r[1] for r in rows), dtype=float, count=len(rows))
    return t, v


# Differencing hourly GNSS positions turns ±0.6 mm of noise into ±10 mm/day of velocity, far
# above a slope's steady creep: by default the analytics work on daily steps. A point watched
# closely in a storm (dense, clean data) may set a shorter ``step_h`` in its settings.
DEFAULT_STEP_H = 24.0
TUNABLE = ("smoothing", "window", "polyorder", "persist_k", "persist_n", "uniform_days", "step_h")


def config_for(point: RiskPoint, monitor: RiskPointMonitor) -> displacement.DisplacementConfig:
    s = point.settings or {}
    known: dict[str, Any] = {"step_h": DEFAULT_STEP_H} | {k: s[k] for k in TUNABLE if k in s}
    return displacement.DisplacementConfig(v_uniform=monitor.v_uniform, **known)


def evaluate(session: Session, point: RiskPoint, now: datetime, window_days: int) -> Evaluation:
    now_ms = int(now.timestamp() * 1000)
    since = now_ms - window_days * DAY_MS
    disp: dict[str, displacement.DisplacementResult] = {}
    rain: dict[str, rainfall.RainfallResult] = {}
    for monitor, _device in registry.monitors_of(session, point.id):
        if monitor.role == "rain":
            t, mm = _hourly(session, monitor.device_id, monitor.metric, since, now_ms, total=True)
            rain[monitor.label] = rainfall.analyse(t, mm, now_ms=now_ms)
        else:
            t, s = _hourly(session, monitor.device_id, monitor.metric, since, now_ms, total=False)
            disp[monitor.label] = displacement.analyse(
                t, s, config_for(point, monitor), now_ms=now_ms
            )
    return Evaluation(point, disp, rain, decision.decide(disp, rain))


def apply(
    session: Session, evaluation: Evaluation, now: datetime, auto_propose: str = "yellow"
) -> None:
    """Store the level on the point; propose a warning when it reaches ``auto_propose``."""
    point, verdict = evaluation.point, evaluation.decision
    before = point.level
    point.level, point.level_reasons, point.evaluated_at = verdict.level, verdict.reasons, now
    if verdict.level != before:
        live.publish(
            session,
            "risk_points",
            "level",
            point.code,
            at=now,
            region_code=point.region_code,
            payload={"from": before, "to": verdict.level, "reasons": verdict.reasons[:3]},
        )
    if (
        auto_propose != "none"
        and LEVEL_RANK[verdict.level] >= LEVEL_RANK[auto_propose]
        and not _declined(session, point, verdict.level, now)
    ):
        workflow.propose(
            session,
            point,
            verdict.level,
            verdict.reasons,
            workflow.ANALYTICS,
            now,
            reasons_en=list(getattr(verdict, "reasons_en", [])),
            source="analytics",
            evidence={"evidence": _jsonable(getattr(verdict, "evidence", []))},
        )


# After a commander declines a proposal, the analytics stay quiet for this long unless the
# level rises above the one declined: otherwise the next reading would ask again at once.
DECLINED_QUIET = timedelta(hours=12)


def _declined(session: Session, point: RiskPoint, level: str, now: datetime) -> bool:
    last = session.scalar(
        select(Warning)
        .where(Warning.risk_point_id == point.id, Warning.state == "rejected")
        .order_by(Warning.closed_at.desc())
        .limit(1)
    )
    return (
        last is not None
        and last.closed_at is not None
        and now - last.closed_at < DECLINED_QUIET
        and LEVEL_RANK[level] <= LEVEL_RANK[last.level]
    )


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, float | int | str | bool) or value is None:
        return value
    return str(value)


def due(session: Session) -> list[RiskPoint]:
    """Active points with a monitor reading newer than the point's last evaluation. Judged by
    the readings' own time, not their arrival: a replay or a late upload of old data does not
    make a point due again and again."""
    newest = (
        select(RiskPointMonitor.risk_point_id, func.max(Latest.ts).label("ts"))
        .join(Latest, Latest.device_id == RiskPointMonitor.device_id)
        .group_by(RiskPointMonitor.risk_point_id)
        .subquery()
    )
    rows = session.execute(
        select(RiskPoint, newest.c.ts)
        .join(newest, newest.c.risk_point_id == RiskPoint.id)
        .where(RiskPoint.active.is_(True))
        .order_by(RiskPoint.code)
    )
    return [
        point
        for point, ts in rows
        if point.evaluated_at is None or ts > point.evaluated_at.timestamp() * 1000
    ]


def run(session: Session, now: datetime, settings: Any) -> int:
    """Evaluate every point that is due (called by the worker loop)."""
    points = due(session)
    for point in points:
        apply(
            session,
            evaluate(session, point, now, settings.warning_window_days),
            now,
            settings.warning_auto_propose,
        )
    return len(points)


def chart_view(evaluation: Evaluation, max_points: int = 2000) -> dict[str, Any]:
    """What the commander looks at: per monitor the curves with level bands, the inverse
    velocity fit and predicted failure time; per gauge the rain event against both
    intensity–duration thresholds; the decision with its reasons."""
    d = evaluation.decision
    return {
        "risk_point": evaluation.point.code,
        "level": d.level,
        "reasons": d.reasons,
        "reasons_en": list(getattr(d, "reasons_en", [])),
        "displacement": {
            label: r.as_dict(max_points=max_points) for label, r in evaluation.displacements.items()
        },
        "rainfall": {label: r.as_dict() for label, r in evaluation.rain.items()},
        "level_bands": {
            "tangent_angle_deg": [
                {"level": "blue", "from": 40.0, "to": 45.0},
                {"level": "yellow", "from": 45.0, "to": 80.0},
                {"level": "orange", "from": 80.0, "to": 85.0},
                {"level": "red", "from": 85.0, "to": 90.0},
            ]
        },
    }


def job(factory: sessionmaker[Session], settings: Any, now: datetime | None = None) -> int:
    from cityops.db import transaction, utcnow

    with transaction(factory) as session:
        return run(session, now or utcnow(), settings)
