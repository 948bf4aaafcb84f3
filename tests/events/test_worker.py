"""The clock worker: ladder steps at 80/100/150/200 % of the limit, each taken exactly once,
also when two workers race."""

from __future__ import annotations

import threading
from collections import Counter
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import Connection, func, select
from sqlalchemy.orm import Session, sessionmaker

from cityops import migrate
from cityops.auth import audit
from cityops.auth.permissions import permissions_of
from cityops.auth.principal import Principal
from cityops.db import make_engine, session_factory, transaction, utcnow
from cityops.demo import district
from cityops.events import intake, jobs, lifecycle
from cityops.events.lifecycle import Action, ActionInput
from cityops.events.models import Case, CaseEvent
from cityops.org.models import Unit
from tests.conftest import _skip_without_pg
from tests.dbutil import BACKENDS, fresh_database

GRID = "500154024003001"
TOWN = Principal(
    "person", 0, "镇派遣员", frozenset({"dispatcher"}), permissions_of({"dispatcher"}), "500154024"
)
CITIZEN = Principal(
    "person", 0, "群众", frozenset({"citizen"}), permissions_of({"citizen"}), "500154"
)


def dispatched_case(session: Session, hours_ago: float) -> Case:
    """A town case dispatched ``hours_ago`` hours ago on natural time (DZ01: 1 h urgent)."""
    now = utcnow()
    case, _ = intake.report(session, CITIZEN, intake.Report("山体裂缝", region_code=GRID), now)
    lifecycle.act(
        session, case, Action.register, TOWN, ActionInput(category="DZ01", urgency="urgent"), now
    )
    past = now - timedelta(hours=hours_ago)
    lifecycle.act(session, case, Action.dispatch, TOWN, ActionInput(unit="TC-500154024-PA"), past)
    return case


def steps_of(session: Session, case: Case) -> list[str]:
    return list(
        session.scalars(
            select(CaseEvent.action)
            .where(CaseEvent.case_id == case.id, CaseEvent.actor_kind == "system")
            .order_by(CaseEvent.id)
        )
    )


def test_the_ladder_in_order_then_nothing(session: Session, connection: Connection) -> None:
    case = dispatched_case(session, hours_ago=0.1)
    limit = case.limit_hours
    assert limit is not None and case.clock == "natural"
    factory = sessionmaker(bind=connection, join_transaction_mode="create_savepoint")
    start = case.clock_started_at
    assert start is not None

    assert jobs.run_due(factory, start + timedelta(hours=0.5 * limit)).total == 0
    assert jobs.run_due(factory, start + timedelta(hours=0.85 * limit)).steps == {"warn": 1}
    tally = jobs.run_due(factory, start + timedelta(hours=1.6 * limit))
    assert tally.steps == {"urge": 1, "supervise": 1}
    session.refresh(case)
    assert case.overdue and case.state == "dispatched"
    assert jobs.run_due(factory, start + timedelta(hours=2.1 * limit)).steps == {"auto_escalate": 1}
    session.refresh(case)
    assert case.level == "district" and case.state == "registered" and case.next_clock_at is None
    assert steps_of(session, case) == ["warn", "urge", "supervise", "auto_escalate"]
    assert jobs.run_due(factory, start + timedelta(days=30)).total == 0  # idempotent


def test_handled_cases_leave_the_ladder(session: Session, connection: Connection) -> None:
    case = dispatched_case(session, hours_ago=0.1)
    handler = session.scalar(select(Unit.id).where(Unit.code == "TC-500154024-PA"))
    person = Principal(
        "person",
        0,
        "处置",
        frozenset({"handler"}),
        permissions_of({"handler"}),
        "500154024",
        unit_id=handler,
    )
    now = utcnow()
    lifecycle.act(session, case, Action.accept, person, ActionInput(), now)
    lifecycle.act(session, case, Action.report_done, person, ActionInput(note="已处置"), now)
    factory = sessionmaker(bind=connection, join_transaction_mode="create_savepoint")
    assert jobs.run_due(factory, now + timedelta(days=10)).total == 0


def test_parked_cases_do_not_tick(session: Session, connection: Connection) -> None:
    case = dispatched_case(session, hours_ago=0.1)
    shift = Principal(
        "person",
        0,
        "值班长",
        frozenset({"shift_leader"}),
        permissions_of({"shift_leader"}),
        "500154",
    )
    lifecycle.act(session, case, Action.park, shift, ActionInput(note="等待"), utcnow())
    factory = sessionmaker(bind=connection, join_transaction_mode="create_savepoint")
    assert jobs.run_due(factory, utcnow() + timedelta(days=10)).total == 0


@pytest.mark.slow
@pytest.mark.parametrize("backend", BACKENDS)
def test_two_workers_racing_take_each_step_once(backend: str, tmp_path: Path) -> None:
    _skip_without_pg(backend)
    audit.install()
    with fresh_database(backend, tmp_path) as url:
        engine = make_engine(url)
        try:
            migrate.upgrade(engine)
            with transaction(sessionmaker(bind=engine)) as s:
                district.load(
                    s,
                    district.generate(
                        district.DemoConfig(villages_per_town=3, grids_per_village=1)
                    ),
                )
            with transaction(sessionmaker(bind=engine)) as s:
                for _ in range(40):
                    dispatched_case(s, hours_ago=5)  # every step is due
            factory = session_factory(engine, writer=True)
            tallies: list[jobs.Tally] = []
            errors: list[BaseException] = []

            def work() -> None:
                try:
                    tallies.append(jobs.run_due(factory))
                except BaseException as exc:  # surfaced below
                    errors.append(exc)

            threads = [threading.Thread(target=work) for _ in range(2)]
            for t in threads:
                t.start()
            for t in threads:
                t.join(timeout=120)
            assert not errors, errors
            assert len(tallies) == 2
            with Session(engine) as s:
                per_case = Counter(
                    (case_id, action)
                    for case_id, action in s.execute(
                        select(CaseEvent.case_id, CaseEvent.action).where(
                            CaseEvent.actor_kind == "system"
                        )
                    )
                )
                assert set(per_case.values()) == {1}, "a step was taken twice"
                assert len(per_case) == 40 * 4
                assert (
                    s.scalar(select(func.count()).select_from(Case).where(Case.level == "district"))
                    == 40
                )
            assert sum(t.total for t in tallies) == 160
        finally:
            engine.dispose()
