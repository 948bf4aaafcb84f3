"""Worker duties: shelving that expires returns the alarm to the list (claimed once), and
telemetry retention removes what is older than the retention period."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from cityops.alarms import jobs, rules
from cityops.alarms import service as alarms
from cityops.alarms.models import AlarmEvent
from cityops.auth.permissions import permissions_of
from cityops.auth.principal import Principal
from cityops.telemetry import partitions
from cityops.telemetry.ingest import ingest
from cityops.telemetry.models import Reading, Rollup1h, Rollup1m
from tests.telemetry.conftest import NOW, Kit, ms

ADMIN = Principal("person", 0, "值班长", frozenset({"admin"}), permissions_of({"admin"}), "")


def factory_of(session: Session) -> sessionmaker[Session]:
    return sessionmaker(
        bind=session.connection(), join_transaction_mode="create_savepoint", expire_on_commit=False
    )


def test_shelving_expires_once(session: Session, kit: Kit) -> None:
    rules.upsert(
        session,
        {
            "code": "low",
            "name": "压力低",
            "kind": "threshold",
            "scope": "device_type",
            "scope_value": "hydrant",
            "metric": "pressure_mpa",
            "params": {"op": "below", "value": 0.1},
            "severity": "critical",
        },
        NOW,
    )
    later = NOW + timedelta(hours=1)
    reading = {"device": kit.codes["hydrant"], "metric": "pressure_mpa", "ts": ms(1), "value": 0.0}
    [alarm_id] = ingest(session, [reading], later).alarms
    alarm = alarms.get(session, alarm_id)
    alarms.shelve(session, alarm, ADMIN, later, 30, "检修")
    session.flush()
    factory = factory_of(session)
    assert jobs.unshelve_due(factory, later + timedelta(minutes=29)) == 0
    assert jobs.unshelve_due(factory, later + timedelta(minutes=31)) == 1
    assert jobs.unshelve_due(factory, later + timedelta(minutes=32)) == 0
    session.refresh(alarm)
    assert alarm.shelved_until is None
    actions = list(
        session.scalars(select(AlarmEvent.action).where(AlarmEvent.alarm_id == alarm_id))
    )
    assert actions == ["raised", "shelved", "unshelved"]


def test_retention_removes_old_readings_and_minute_rollups(session: Session, kit: Kit) -> None:
    g = kit.codes["gnss"]
    old = {"device": g, "metric": "disp_mm", "ts": ms(0), "value": 1.0}
    ingest(session, [old], NOW + timedelta(minutes=1))
    # Fourteen months on, a 13-month retention leaves nothing of it but the hourly roll-up.
    later = NOW + timedelta(days=14 * 31)
    if session.get_bind().dialect.name == "postgresql":
        # PostgreSQL drops whole monthly partitions, which cannot happen inside this test's
        # own transaction; the rule that decides which partitions go is checked on its own.
        horizon = partitions._back((later.year, later.month), 13)
        assert (NOW.year, NOW.month) < horizon <= (later.year, later.month)
        return
    recent = {"device": g, "metric": "disp_mm", "ts": int(later.timestamp() * 1000), "value": 2.0}
    ingest(session, [recent], later)
    removed = jobs.retention(factory_of(session), 13, later)
    assert removed == 2  # the old reading and its minute roll-up
    assert session.scalar(select(func.count()).select_from(Reading)) == 1
    assert session.scalar(select(func.count()).select_from(Rollup1m)) == 1
    assert session.scalar(select(func.count()).select_from(Rollup1h)) == 2


def test_retention_on_sqlite_keeps_what_is_not_folded_yet(session: Session, kit: Kit) -> None:
    """SQLite's fold follows readings' rowids: retention leaves readings not yet folded, and
    the newest row (whose rowid would otherwise be handed out again)."""
    if session.get_bind().dialect.name != "sqlite":
        pytest.skip("PostgreSQL drops whole partitions")
    from cityops.telemetry import fold

    g = kit.codes["gnss"]
    old = {"device": g, "metric": "disp_mm", "ts": ms(0), "value": 1.0}
    ingest(session, [old], NOW + timedelta(minutes=1), fold=False)
    later = NOW + timedelta(days=14 * 31)
    assert jobs.retention(factory_of(session), 13, later) == 0  # not folded: kept
    fold.run(session, later)
    assert jobs.retention(factory_of(session), 13, later) == 1  # its minute roll-up only
    recent = {"device": g, "metric": "disp_mm", "ts": int(later.timestamp() * 1000), "value": 2.0}
    ingest(session, [recent], later)
    assert jobs.retention(factory_of(session), 13, later) == 1  # now the old reading goes
    assert session.scalar(select(func.count()).select_from(Reading)) == 1
