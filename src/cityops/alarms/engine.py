"""Rule evaluation on ingest: each new reading, in time order per series, moves a small state
machine (normal → pending → active → normal) per (rule, source).

Only readings newer than the newest the series had before the batch are evaluated: a late
reading is stored and rolled up but does not rewind a rule — so replays, retries and
out-of-order delivery cannot raise an alarm twice. States are persisted in the caller's
transaction and only when they change; a source in the normal state has no row at all.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from cityops.alarms import conditions, service
from cityops.alarms.models import AlarmRule, Kind, RuleState
from cityops.telemetry.directory import DeviceInfo
from cityops.telemetry.models import Device, Latest, Reading
from cityops.telemetry.store import Stored

State = tuple[bool, int | None]  # active, pending since (ms)
NORMAL: State = (False, None)


def applies(rule: AlarmRule, device: DeviceInfo) -> bool:
    match rule.scope:
        case "device_type":
            return device.type_code == rule.scope_value
        case "device":
            return device.code == rule.scope_value
        case "group":
            return device.group == rule.scope_value
        case "site":
            return device.site == rule.scope_value
    return False


def source_of(device: DeviceInfo) -> str:
    return f"device:{device.code}"


@dataclass
class Transition:
    rule: AlarmRule
    source: str
    raised: bool  # True: raised; False: back to normal
    value: float
    ts: int
    message: str
    device: DeviceInfo | None = None
    site: str | None = None


class States:
    """The persisted states of the rules in play, and the changes to write back."""

    def __init__(self, session: Session, rule_ids: Iterable[int]) -> None:
        self.session = session
        self.rows = {
            (s.rule_id, s.source): s
            for s in session.scalars(
                select(RuleState).where(RuleState.rule_id.in_(sorted(set(rule_ids))))
            )
        }
        self.now: datetime | None = None

    def get(self, rule_id: int, source: str) -> State:
        row = self.rows.get((rule_id, source))
        return (row.active, row.pending_since) if row else NORMAL

    def put(self, rule_id: int, source: str, state: State) -> None:
        row = self.rows.get((rule_id, source))
        if state == NORMAL:
            if row is not None:
                self.session.delete(row)
                del self.rows[(rule_id, source)]
            return
        if row is None:
            row = RuleState(rule_id=rule_id, source=source)
            self.session.add(row)
            self.rows[(rule_id, source)] = row
        if (row.active, row.pending_since) != state:
            row.active, row.pending_since = state
            if self.now is not None:
                row.updated_at = self.now


def step(
    test: conditions.Threshold, state: State, value: float, ts: int
) -> tuple[State, bool | None]:
    """One reading through the machine: the new state and True (raise) / False (back to
    normal) / None (no change)."""
    active, pending = state
    if active:
        return ((False, None), False) if test.off(value) else (state, None)
    if not test.on(value):
        return NORMAL, None
    since = pending if pending is not None else ts
    if ts - since >= test.duration_ms:
        return (True, None), True
    return (False, since), None


def enabled_rules(session: Session) -> list[AlarmRule]:
    return list(session.scalars(select(AlarmRule).where(AlarmRule.enabled.is_(True))))


def on_readings(
    session: Session, stored: list[Stored], devices: dict[int, DeviceInfo], now: datetime
) -> list[int]:
    rules = enabled_rules(session)
    if not rules:
        return []
    series: dict[tuple[int, str], list[Stored]] = defaultdict(list)
    for r in stored:
        if r.prior_ts is None or r.ts > r.prior_ts:
            series[(r.device_id, r.metric)].append(r)
    for rows in series.values():
        rows.sort(key=lambda r: r.ts)
    states = States(session, (r.id for r in rules))
    states.now = now
    out: list[Transition] = []
    for rule in rules:
        match rule.kind:
            case Kind.threshold:
                out += _threshold(rule, series, devices, states)
            case Kind.rate:
                out += _rate(session, rule, series, devices, states)
            case Kind.no_data:
                out += _data_again(rule, stored, devices, states)
            case Kind.composite:
                out += _composite(session, rule, stored, devices, states)
    changed = service.apply(session, out, now)
    session.flush()
    return changed


def _threshold(
    rule: AlarmRule,
    series: dict[tuple[int, str], list[Stored]],
    devices: dict[int, DeviceInfo],
    states: States,
) -> list[Transition]:
    test = conditions.threshold(rule.params)
    out = []
    for (device_id, metric), rows in series.items():
        device = devices.get(device_id)
        if metric != rule.metric or device is None or not applies(rule, device):
            continue
        source = source_of(device)
        state = states.get(rule.id, source)
        for r in rows:
            state, change = step(test, state, r.value, r.ts)
            if change is not None:
                out.append(
                    Transition(
                        rule,
                        source,
                        change,
                        r.value,
                        r.ts,
                        f"{device.code} {metric} = {r.value:g}（{test.describe()}）",
                        device=device,
                        site=device.site,
                    )
                )
        states.put(rule.id, source, state)
    return out


def _rate(
    session: Session,
    rule: AlarmRule,
    series: dict[tuple[int, str], list[Stored]],
    devices: dict[int, DeviceInfo],
    states: States,
) -> list[Transition]:
    test = conditions.threshold(rule.params)
    window = conditions.window_ms(rule.params)
    mine = {
        key: rows
        for key, rows in series.items()
        if key[1] == rule.metric and key[0] in devices and applies(rule, devices[key[0]])
    }
    if not mine:
        return []
    lo = min(rows[0].ts for rows in mine.values()) - window
    hi = max(rows[-1].ts for rows in mine.values())
    history: dict[int, list[tuple[int, float]]] = defaultdict(list)
    for device_id, ts, value in session.execute(
        select(Reading.device_id, Reading.ts, Reading.value)
        .where(
            Reading.metric == rule.metric,
            Reading.device_id.in_(sorted(k[0] for k in mine)),
            Reading.ts.between(lo, hi),
        )
        .order_by(Reading.device_id, Reading.ts)
    ):
        history[device_id].append((ts, value))
    out = []
    minutes = window // 60_000
    for (device_id, metric), rows in mine.items():
        device = devices[device_id]
        source = source_of(device)
        state = states.get(rule.id, source)
        past = history[device_id]
        start = 0
        for r in rows:
            while start < len(past) and past[start][0] < r.ts - window:
                start += 1
            if start >= len(past) or past[start][0] >= r.ts:
                continue  # nothing earlier inside the window to compare with
            delta = r.value - past[start][1]
            state, change = step(test, state, delta, r.ts)
            if change is not None:
                out.append(
                    Transition(
                        rule,
                        source,
                        change,
                        delta,
                        r.ts,
                        f"{device.code} {metric} {minutes} 分钟变化 {delta:+g}"
                        f"（{test.describe()}）",
                        device=device,
                        site=device.site,
                    )
                )
        states.put(rule.id, source, state)
    return out


def _data_again(
    rule: AlarmRule, stored: list[Stored], devices: dict[int, DeviceInfo], states: States
) -> list[Transition]:
    """A device silent long enough raised a no-data alarm (the worker does that); its next
    reading clears it."""
    out = []
    seen = {r.device_id: r for r in stored}
    for device_id, r in seen.items():
        device = devices.get(device_id)
        if device is None or not applies(rule, device):
            continue
        source = source_of(device)
        if states.get(rule.id, source)[0]:
            states.put(rule.id, source, NORMAL)
            out.append(
                Transition(
                    rule,
                    source,
                    False,
                    r.value,
                    r.ts,
                    f"{device.code} 恢复上报",
                    device=device,
                    site=device.site,
                )
            )
    return out


def _composite(
    session: Session,
    rule: AlarmRule,
    stored: list[Stored],
    devices: dict[int, DeviceInfo],
    states: States,
) -> list[Transition]:
    """All conditions at once on one site (or device group): each condition holds when some
    device of the site reported a fresh value meeting it."""
    parts, fresh = conditions.composite(rule.params)
    by = str(rule.params.get("by", "site"))
    metrics = {p.metric for p in parts}
    touched: dict[str, int] = {}
    for r in stored:
        device = devices.get(r.device_id)
        if device is None or r.metric not in metrics or not applies(rule, device):
            continue
        key = device.site if by == "site" else device.group
        if key:
            touched[key] = max(touched.get(key, 0), r.ts)
    out = []
    for key, ts in touched.items():
        column = Device.site if by == "site" else Device.group_id
        query = (
            select(Latest.metric, Latest.ts, Latest.value, Device.code)
            .join(Device, Device.id == Latest.device_id)
            .where(Latest.metric.in_(sorted(metrics)), Device.active.is_(True))
        )
        if by == "site":
            query = query.where(column == key)
        else:
            from cityops.telemetry.models import DeviceGroup

            query = query.join(DeviceGroup, DeviceGroup.id == Device.group_id).where(
                DeviceGroup.code == key
            )
        latest = session.execute(query).all()
        met = []
        for part in parts:
            hit = next(
                (
                    (code, value)
                    for metric, at, value, code in latest
                    if metric == part.metric and at >= ts - fresh and part.test.on(value)
                ),
                None,
            )
            met.append(hit)
        source = f"{by}:{key}"
        active, _pending = states.get(rule.id, source)
        now_on = all(h is not None for h in met)
        if now_on and not active:
            states.put(rule.id, source, (True, None))
            words = "；".join(
                f"{h[0]} {p.metric} = {h[1]:g}（{p.test.describe()}）"
                for p, h in zip(parts, met, strict=True)
                if h is not None
            )
            out.append(Transition(rule, source, True, 1.0, ts, words, site=key))
        elif active and not now_on:
            states.put(rule.id, source, NORMAL)
            out.append(Transition(rule, source, False, 0.0, ts, "条件不再同时满足", site=key))
    return out
