"""Worker duties of the alarm domain: no-data rules, shelving that expires, telemetry retention.

Claims are atomic: a no-data alarm starts by inserting the rule state row (a second worker's
insert fails on the primary key and its transaction rolls back), an expired shelving is
claimed by a conditional UPDATE — so two workers never raise or unshelve twice.
"""

from __future__ import annotations

import logging
import time
from datetime import datetime

from sqlalchemy import delete, func, literal, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from cityops.alarms import conditions, engine, service
from cityops.alarms.models import Alarm, AlarmRule, Kind
from cityops.auth import audit
from cityops.auth.principal import Who
from cityops.db import transaction, utcnow
from cityops.telemetry.directory import DIRECTORY
from cityops.telemetry.models import Device, DeviceGroup, Latest

log = logging.getLogger("cityops.worker")
ACTOR = audit.Actor("system", "worker", "报警监控 / alarms")
RETENTION_EVERY_S = 3600.0
_last_retention = -RETENTION_EVERY_S


def silent_devices(session: Session, rule: AlarmRule, now: datetime) -> list[str]:
    """Codes of the devices in the rule's scope silent for longer than its limit and not yet
    in alarm for it."""
    cutoff = now.timestamp() - conditions.after_ms(rule.params) / 1000
    last = (
        select(Latest.device_id, func.max(Latest.received_at).label("seen"))
        .group_by(Latest.device_id)
        .subquery()
    )
    from cityops.alarms.models import RuleState

    query = (
        select(Device.code, last.c.seen, Device.created_at)
        .outerjoin(last, last.c.device_id == Device.id)
        .outerjoin(
            RuleState,
            (RuleState.rule_id == rule.id) & (RuleState.source == literal("device:") + Device.code),
        )
        .where(Device.active.is_(True), RuleState.rule_id.is_(None))
    )
    match rule.scope:
        case "device_type":
            query = query.where(Device.type_code == rule.scope_value)
        case "device":
            query = query.where(Device.code == rule.scope_value)
        case "site":
            query = query.where(Device.site == rule.scope_value)
        case "group":
            query = query.join(DeviceGroup, DeviceGroup.id == Device.group_id).where(
                DeviceGroup.code == rule.scope_value
            )
    out = []
    for code, seen, created in session.execute(query):
        moment = seen or created
        if moment is not None and moment.timestamp() < cutoff:
            out.append(code)
    return out


def no_data(factory: sessionmaker[Session], now: datetime | None = None) -> int:
    now = now or utcnow()
    raised = 0
    with transaction(factory) as session:
        rule_ids = list(
            session.scalars(
                select(AlarmRule.id).where(
                    AlarmRule.kind == Kind.no_data, AlarmRule.enabled.is_(True)
                )
            )
        )
    for rule_id in rule_ids:
        try:
            with transaction(factory) as session:
                audit.set_actor(session, ACTOR)
                rule = session.get(AlarmRule, rule_id)
                if rule is None:
                    continue
                codes = silent_devices(session, rule, now)
                devices = DIRECTORY.lookup(session, codes)
                states = engine.States(session, [rule.id], now)
                minutes = conditions.after_ms(rule.params) // 60_000
                transitions = []
                for code in codes:
                    device = devices.get(code)
                    if device is None:
                        continue
                    source = engine.source_of(device)
                    states.put(rule.id, source, (True, None))
                    transitions.append(
                        engine.Transition(
                            rule,
                            source,
                            True,
                            0.0,
                            int(now.timestamp() * 1000),
                            f"{device.code} 超过 {minutes} 分钟无数据 / no data",
                            device=device,
                            site=device.site,
                        )
                    )
                session.flush()  # the claim: a second worker's insert of the same state fails
                raised += len(service.apply(session, transitions, now))
        except IntegrityError:
            log.info("no-data rule %s: another worker raised these first", rule_id)
    return raised


def unshelve_due(factory: sessionmaker[Session], now: datetime | None = None) -> int:
    now = now or utcnow()
    done = 0
    with transaction(factory) as session:
        due = list(
            session.execute(select(Alarm.id, Alarm.shelved_until).where(Alarm.shelved_until <= now))
        )
    for alarm_id, until in due:
        with transaction(factory) as session:
            audit.set_actor(session, ACTOR)
            claimed = session.execute(
                update(Alarm)
                .where(Alarm.id == alarm_id, Alarm.shelved_until == until)
                .values(shelved_until=None)
                .execution_options(synchronize_session=False)
            )
            if getattr(claimed, "rowcount", 0) != 1:
                continue
            alarm = session.get(Alarm, alarm_id, populate_existing=True)
            assert alarm is not None
            service.log_event(
                session,
                alarm,
                "unshelved",
                Who("system", "报警监控 / alarms"),
                now,
                "搁置到期 / shelving expired",
            )
            done += 1
    return done


def retention(factory: sessionmaker[Session], months: int, now: datetime | None = None) -> int:
    """Drop readings (PostgreSQL: whole monthly partitions) and minute roll-ups older than the
    retention period; hourly roll-ups are kept (SQLite: ``fold.prune_sqlite``)."""
    from cityops.telemetry import fold, partitions
    from cityops.telemetry.models import Rollup1m

    now = now or utcnow()
    cutoff = int(now.timestamp() * 1000) - months * 31 * 86_400_000
    removed = 0
    with transaction(factory) as session:
        engine_ = session.get_bind().engine
        if engine_.dialect.name == "postgresql":
            removed += len(partitions.drop_expired(engine_, now, months))
            partitions.prepare(engine_, now, months)
        else:
            removed += fold.prune_sqlite(session, cutoff)
        result = session.execute(delete(Rollup1m).where(Rollup1m.bucket < cutoff))
        removed += getattr(result, "rowcount", 0)
    return removed


def run(
    factory: sessionmaker[Session], retention_months: int, now: datetime | None = None
) -> dict[str, int]:
    """Fold new readings into the roll-ups and latest values first: no-data rules read when
    each device was last heard from."""
    global _last_retention
    from cityops.telemetry import fold

    fold.catch_up(factory, now)
    out = {"no_data": no_data(factory, now), "unshelved": unshelve_due(factory, now)}
    if time.monotonic() - _last_retention >= RETENTION_EVERY_S:
        _last_retention = time.monotonic()
        out["retention"] = retention(factory, retention_months, now)
    return out
