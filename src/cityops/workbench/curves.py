"""Sensor curves for the workbench: on an alarm's page the metric its rule watches, from some
hours before the alarm was raised until it cleared (or now), with the rule's lines — what a
duty officer looks at before acknowledging; on a device's page each of its metrics over the
last day. Drawn by static/wb/curve.js from the points embedded in the page."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy.orm import Session

from cityops.alarms import conditions
from cityops.alarms.models import Alarm, AlarmEvent, AlarmRule, Kind
from cityops.errors import InvalidInput
from cityops.telemetry import service as telemetry
from cityops.telemetry.models import Device

BEFORE = timedelta(hours=6)  # of the alarm's first reading
AFTER = timedelta(hours=2)  # of its clearing
DEVICE_SPAN = timedelta(hours=24)  # a device page's curves
POINTS = 300
RAW_SPAN = timedelta(days=1)


def _ms(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


def series_curve(
    session: Session, device: Device, meta: dict[str, Any], start: datetime, end: datetime
) -> dict[str, Any] | None:
    """One metric of one device (``meta``: as ``telemetry.metrics_of`` declares it) between
    two instants, or None when it has no readings."""
    metric = meta["metric"]
    # Raw readings for up to a day: the newest reading is drawn at once, not after the next
    # fold; longer spans come from the roll-ups.
    resolution = "raw" if end - start <= RAW_SPAN else "auto"
    try:
        _res, width, points = telemetry.series(
            session, device, metric, _ms(start), _ms(end), resolution=resolution, points=POINTS
        )
    except InvalidInput:
        return None
    if not points:
        return None
    return {
        **meta,
        "width_ms": width,
        "start": start,
        "end": end,
        "from": _ms(start),
        "to": _ms(end),
        "lines": [],
        "raised": None,
        "cleared": None,
        "rate": False,
        # [bucket start, min, max, last]: the band and the line drawn through it
        "points": [[p.ts, p.min, p.max, p.last] for p in points],
        "count": sum(p.n for p in points),
        "peak": max(p.max for p in points),
        "low": min(p.min for p in points),
        "latest": points[-1].last,
    }


def reading_time(event: AlarmEvent) -> datetime:
    """When the reading behind an engine's event was taken (a late batch is evaluated some time
    after); when the event came from a person, its own time."""
    stamp = (event.data or {}).get("ts")
    try:
        taken = datetime.fromisoformat(stamp) if isinstance(stamp, str) else event.at
    except ValueError:
        return event.at
    return taken if taken.tzinfo else taken.replace(tzinfo=UTC)


def raised_reading(alarm: Alarm, events: list[AlarmEvent]) -> datetime:
    """When the reading that raised the alarm (this episode) was taken; ``first_seen`` is when
    the engine evaluated it — the same moment for a live reading, later for a late batch."""
    return next(
        (reading_time(e) for e in reversed(events) if e.action in ("raised", "reraised")),
        alarm.first_seen,
    )


def alarm_curve(
    session: Session,
    alarm: Alarm,
    rule: AlarmRule,
    device: Device | None,
    now: datetime,
    events: list[AlarmEvent] | None = None,
) -> dict[str, Any] | None:
    """The alarm's chart, or None when it watches no single sensor's metric (a composite or
    no-data rule) or there is nothing to draw. ``events``: its history, oldest first — the
    markers stand at the readings that raised and cleared it."""
    if device is None or not rule.metric or rule.kind not in (Kind.threshold, Kind.rate):
        return None
    history = events or []
    raised = raised_reading(alarm, history)
    cleared = None
    if alarm.condition == "cleared":
        cleared = next(
            (reading_time(e) for e in reversed(history) if e.action == "cleared"),
            alarm.cleared_at,
        )
    end = now if cleared is None else min(now, cleared + AFTER)
    end = max(end, raised + timedelta(minutes=1))
    meta = telemetry.metric_of(session, device, str(rule.metric))
    curve = series_curve(session, device, meta, raised - BEFORE, end)
    if curve is None:
        return None
    if rule.kind == Kind.threshold:
        test = conditions.threshold(rule.params)
        curve["lines"].append({"kind": "raise", "value": test.value})
        if test.clear != test.value:
            curve["lines"].append({"kind": "clear", "value": test.clear})
    curve["rate"] = rule.kind == Kind.rate
    curve["raised"] = _ms(raised)
    curve["cleared"] = _ms(cleared) if cleared else None
    return curve


def device_curves(session: Session, device: Device, now: datetime) -> list[dict[str, Any]]:
    """Each metric of the device over the last day (those with readings)."""
    out = []
    for m in telemetry.metrics_of(session, device):
        curve = series_curve(session, device, m, now - DEVICE_SPAN, now)
        if curve is not None:
            out.append(curve)
    return out
