"""The sensor curve on an alarm's page: the metric its rule watches, from some hours before
the alarm was raised until it cleared (or now), with the rule's lines — what a duty officer
looks at before acknowledging, without leaving the page."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.orm import Session

from cityops.alarms import conditions
from cityops.alarms.models import Alarm, AlarmRule, Kind
from cityops.errors import InvalidInput
from cityops.telemetry import service as telemetry
from cityops.telemetry.models import Device, DeviceType

BEFORE = timedelta(hours=6)  # of the alarm's first reading
AFTER = timedelta(hours=2)  # of its clearing
POINTS = 300
RAW_SPAN = timedelta(days=1)


def _ms(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


def metric_meta(session: Session, device: Device, metric: str) -> dict[str, Any]:
    """The metric's label (zh, en) and unit, as its device type declares them."""
    kind = session.get(DeviceType, device.type_code)
    for m in kind.metrics if kind else []:
        if m.get("name") == metric:
            return {
                "label": m.get("label") or metric,
                "label_en": m.get("label_en") or m.get("label") or metric,
                "unit": m.get("unit") or "",
            }
    return {"label": metric, "label_en": metric, "unit": ""}


def curve(
    session: Session, alarm: Alarm, rule: AlarmRule, device: Device | None, now: datetime
) -> dict[str, Any] | None:
    """The chart's data, or None when the alarm watches no single sensor's metric (a
    composite or no-data rule) or there is nothing to draw."""
    if device is None or not rule.metric or rule.kind not in (Kind.threshold, Kind.rate):
        return None
    metric = str(rule.metric)
    start = alarm.first_seen - BEFORE
    end = now
    if alarm.condition == "cleared":
        end = min(now, (alarm.cleared_at or alarm.last_seen) + AFTER)
    end = max(end, alarm.last_seen + timedelta(minutes=1))
    # Raw readings for up to a day: the reading that raised the alarm is drawn at once, not
    # after the next fold; longer spans come from the roll-ups.
    resolution = "raw" if end - start <= RAW_SPAN else "auto"
    try:
        _res, width, points = telemetry.series(
            session, device, metric, _ms(start), _ms(end), resolution=resolution, points=POINTS
        )
    except InvalidInput:
        return None
    if not points:
        return None
    lines: list[dict[str, Any]] = []
    if rule.kind == Kind.threshold:
        test = conditions.threshold(rule.params)
        lines.append({"kind": "raise", "value": test.value})
        if test.clear != test.value:
            lines.append({"kind": "clear", "value": test.clear})
    last = points[-1]
    return {
        "metric": metric,
        **metric_meta(session, device, metric),
        "rate": rule.kind == Kind.rate,
        "width_ms": width,
        "start": start,
        "end": end,
        "raised": _ms(alarm.first_seen),
        "cleared": _ms(alarm.cleared_at) if alarm.cleared_at else None,
        "lines": lines,
        # [bucket start, min, max, last]: the band and the line drawn through it
        "points": [[p.ts, p.min, p.max, p.last] for p in points],
        "count": sum(p.n for p in points),
        "peak": max(p.max for p in points),
        "low": min(p.min for p in points),
        "latest": last.last,
    }
