"""Rule evaluation on ingest: each new reading, in time order per series, moves a small state
machine (normal → pending → active → normal) per (rule, source).

Only readings newer than the newest the series had before the batch are evaluated: a late
reading is stored and rolled up but does not rewind a rule — so replays, retries and
out-of-order delivery cannot raise an alarm twice. States are persisted in the caller's
transaction and only when they change; a source in the normal state has no row at all.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from cityops.alarms import conditions, service
from cityops.alarms.models import AlarmRule, Kind, RuleState
from cityops.telemetry import store
from cityops.telemetry.directory import DeviceInfo
from cityops.telemetry.models import Device, Reading
from cityops.telemetry.store import Batch
from cityops.telemetry.validate import Row

State = tuple[bool, int | None]  # active, pending since (ms)
NORMAL: State = (False, None)


# A rule's scope names which attribute of a device its scope_value is compared with.
SCOPE_ATTRIBUTE = {"device_type": "type_code", "device": "code", "group": "group", "site": "site"}


def applies(rule: AlarmRule, device: DeviceInfo) -> bool:
    name = SCOPE_ATTRIBUTE.get(rule.scope)
    return name is not None and getattr(device, name) == rule.scope_value


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

    def __init__(self, session: Session, rule_ids: Iterable[int], now: datetime) -> None:
        self.session = session
        self.now = now
        self.rows = {
            (s.rule_id, s.source): s
            for s in session.scalars(
                select(RuleState).where(RuleState.rule_id.in_(sorted(set(rule_ids))))
            )
        }

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
            row.updated_at = self.now


def enabled_rules(session: Session) -> list[AlarmRule]:
    return list(session.scalars(select(AlarmRule).where(AlarmRule.enabled.is_(True))))


def looks_back(rules: Iterable[AlarmRule]) -> bool:
    """Whether any of these rules looks back from each new reading (``Batch.source``): a rate
    of change does."""
    return any(r.kind == Kind.rate for r in rules)


def on_readings(
    session: Session,
    batch: Batch,
    devices: Mapping[int, DeviceInfo],
    now: datetime,
    *,
    by_code: Mapping[str, DeviceInfo] | None = None,
    rules: list[AlarmRule] | None = None,
) -> list[int]:
    """``devices``: by id, every device the batch's readings name (more is fine); ``by_code``
    the same by code, and ``rules`` the enabled rules, if the caller has them."""
    if rules is None:
        rules = enabled_rules(session)
    if not rules:
        return []
    states = States(session, (r.id for r in rules), now)
    codes = by_code if by_code is not None else {d.code: d for d in devices.values()}
    out: list[Transition] = []
    for rule in rules:
        match rule.kind:
            case Kind.threshold | Kind.rate:
                out += _per_reading(rule, batch, devices, codes, states)
            case Kind.no_data:
                out += _data_again(rule, batch.rows, devices, states)
            case Kind.composite:
                out += _composite(session, rule, batch.rows, devices, states)
    changed = service.apply(session, out, now)
    session.flush()
    return changed


def _involved(
    rule: AlarmRule,
    test: conditions.Threshold,
    window: int | None,
    batch: Batch,
    codes: Mapping[str, DeviceInfo],
    states: States,
) -> set[int]:
    """The devices whose readings could change the rule's conclusion: those with a new
    reading meeting the condition (for a rate, its change over the window, found in SQL —
    one index seek per new reading) and those already pending or active. Everything else
    stays normal without a further look."""
    metric = str(rule.metric)
    new = batch.of_metric(metric)
    if not new:
        return set()
    above = test.op == "above"
    if window is None:
        limit = test.value
        found = (
            {r[0] for r in new if r[3] > limit} if above else {r[0] for r in new if r[3] < limit}
        )
    else:
        found = store.rising(batch, metric, window, ">" if above else "<", test.value)
    for rule_id, source in states.rows:
        if rule_id == rule.id:
            device = codes.get(source[7:])
            if device is not None:
                found.add(device.id)
    return found


def _per_reading(
    rule: AlarmRule,
    batch: Batch,
    devices: Mapping[int, DeviceInfo],
    codes: Mapping[str, DeviceInfo],
    states: States,
) -> list[Transition]:
    """Threshold on the value itself, or — for a rate rule — on its change since the oldest
    reading inside the window ending at it."""
    test = conditions.threshold(rule.params)
    rate = rule.kind == Kind.rate
    window = conditions.window_ms(rule.params) if rate else None
    metric = str(rule.metric)
    involved = [
        devices[i]
        for i in _involved(rule, test, window, batch, codes, states)
        if i in devices and applies(rule, devices[i])
    ]
    # Only those with new readings of the metric newer than their series had before.
    walks = [(d, batch.series(d.id, metric)) for d in involved]
    walks = [(d, w) for d, w in walks if w]
    if not walks:
        return []
    starts: dict[tuple[int, int], tuple[int, float]] = {}
    if window is not None:
        starts = store.window_starts(batch, metric, window, [d.id for d, _w in walks])
    minutes = (window or 0) // 60_000
    on, off = test.on, test.off
    out = []
    for device, walk in walks:
        source = f"device:{device.code}"
        before = states.get(rule.id, source)
        active, pending = before
        for r in walk:
            if window is not None:
                start = starts.get((r.device_id, r.ts))
                if start is None or start[0] >= r.ts:
                    continue  # nothing earlier inside the window to compare with
                value = r.value - start[1]
            else:
                value = r.value
            if active:
                if not off(value):
                    continue
                active, pending, change = False, None, False
            elif not on(value):
                pending = None
                continue
            else:
                since = pending if pending is not None else r.ts
                if r.ts - since < test.duration_ms:
                    pending = since
                    continue
                active, pending, change = True, None, True
            what = (
                f"{device.code} {metric} {minutes} 分钟变化 {value:+g}"
                if rate
                else f"{device.code} {metric} = {value:g}"
            )
            out.append(
                Transition(
                    rule,
                    source,
                    change,
                    value,
                    r.ts,
                    f"{what}（{test.describe()}）",
                    device=device,
                    site=device.site,
                )
            )
        if (active, pending) != before:
            states.put(rule.id, source, (active, pending))
    return out


def _data_again(
    rule: AlarmRule, rows: list[Row], devices: Mapping[int, DeviceInfo], states: States
) -> list[Transition]:
    """A device silent long enough raised a no-data alarm (the worker does that); its next
    reading clears it."""
    out: list[Transition] = []
    if not any(rule_id == rule.id and row.active for (rule_id, _s), row in states.rows.items()):
        return out
    seen = {r[0]: r for r in rows}
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
                    r[3],
                    r[2],
                    f"{device.code} 恢复上报",
                    device=device,
                    site=device.site,
                )
            )
    return out


def _composite(
    session: Session,
    rule: AlarmRule,
    rows: list[Row],
    devices: Mapping[int, DeviceInfo],
    states: States,
) -> list[Transition]:
    """All conditions at once on one site (or device group): each condition holds when some
    device of the site reported a fresh value meeting it."""
    parts, fresh = conditions.composite(rule.params)
    by = str(rule.params.get("by", "site"))
    metrics = {p.metric for p in parts}
    touched: dict[str, int] = {}
    for device_id, metric, ts, _value in rows:
        device = devices.get(device_id)
        if device is None or metric not in metrics or not applies(rule, device):
            continue
        key = device.site if by == "site" else device.group
        if key:
            touched[key] = max(touched.get(key, 0), ts)
    out = []
    for key, ts in touched.items():
        latest = _newest(session, by, key, parts)
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


def _newest(
    session: Session, by: str, key: str, parts: list[conditions.Part]
) -> list[tuple[str, int, float, str]]:
    """(metric, ts, value, device code): the newest stored reading of each metric the rule
    names, of each active device of the site (or group) — read from the readings themselves
    (two index seeks each), so it never waits for a fold."""
    out: list[tuple[str, int, float, str]] = []
    for metric in dict.fromkeys(p.metric for p in parts):
        newest = (
            select(Reading.ts, Reading.value)
            .where(Reading.device_id == Device.id, Reading.metric == metric)
            .order_by(Reading.ts.desc())
            .limit(1)
        )
        query = select(
            Device.code,
            newest.with_only_columns(Reading.ts).scalar_subquery(),
            newest.with_only_columns(Reading.value).scalar_subquery(),
        ).where(Device.active.is_(True))
        if by == "site":
            query = query.where(Device.site == key)
        else:
            from cityops.telemetry.models import DeviceGroup

            query = query.join(DeviceGroup, DeviceGroup.id == Device.group_id).where(
                DeviceGroup.code == key
            )
        for code, at, value in session.execute(query.order_by(Device.code)):
            if at is not None:
                out.append((metric, int(at), float(value), code))
    return out
