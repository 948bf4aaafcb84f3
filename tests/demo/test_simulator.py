from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from cityops.demo import simulator
from cityops.events import evaluation
from cityops.events.models import Case, CaseEvent

NOW = datetime(2026, 7, 20, 2, 0, tzinfo=UTC)


def history(session: Session) -> tuple[Counter[str], Counter[str]]:
    nested = session.begin_nested()
    made = simulator.backfill(session, days=4, per_day=12, now=NOW)
    states = Counter(
        dict(session.execute(select(Case.state, func.count()).group_by(Case.state)).all())
    )
    actions = Counter(
        dict(
            session.execute(select(CaseEvent.action, func.count()).group_by(CaseEvent.action)).all()
        )
    )
    assert made == sum(states.values())
    rows = evaluation.evaluate(session, datetime(2026, 7, 1, tzinfo=UTC), NOW)
    assert (
        rows
        and sum(r.counts["dispatched"] for r in rows)
        == actions["dispatch"] + actions["self_handle"]
    )
    nested.rollback()
    return states, actions


def test_history_goes_round_the_loop_and_is_reproducible(session: Session) -> None:
    states, actions = history(session)
    assert sum(states.values()) >= 40
    assert {"closed", "reported"} <= set(states) and len(states) >= 4
    assert actions["register"] and actions["dispatch"] and actions["verify_ok"]
    assert history(session) == (states, actions)
