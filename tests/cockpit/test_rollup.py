"""The cockpit's daily roll-up against a direct count of the cases, on both backends.

* Random case histories driven through intake and the lifecycle (the property test's driver,
  tests/events/test_properties.py): the roll-up kept by the hooks equals one rebuilt from the
  cases, and the cockpit's summary read from it equals the summary counted directly.
* Random cases and timelines written straight into the tables (many regions, cases located
  only to a town or outside the district, no category, events a microsecond either side of
  local midnight): the rebuilt roll-up gives the same summaries as the direct count, for the
  district, towns, villages and grids.

The direct count is the cockpit's own fallback: asked for days of a zone other than the
roll-up's, it counts the cases. "Etc/GMT-8" has Asia/Shanghai's days (no DST since 1991), so
both answers must agree to the last figure.
"""

from __future__ import annotations

import random
from datetime import UTC, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import select
from sqlalchemy.orm import Session

from cityops.auth.permissions import permissions_of
from cityops.auth.principal import Principal
from cityops.catalog.models import Category
from cityops.cockpit import rollup, service
from cityops.cockpit.models import DailyClosures, DailyIntake
from cityops.events.models import Case, CaseEvent
from cityops.geo.models import Region
from tests.events.test_properties import Run, cast_for, play

DISTRICT = "500154"
SAME_DAYS = ZoneInfo("Etc/GMT-8")  # Asia/Shanghai's offset under another name: counted directly
ADMIN = Principal(
    kind="person",
    id=0,
    name="驾驶舱测试",
    roles=frozenset({"admin"}),
    permissions=permissions_of({"admin"}),
    region_code=DISTRICT,
)


def stored(session: Session) -> tuple[set[tuple[Any, ...]], set[tuple[Any, ...]]]:
    """Both tables' rows that count something (a recategorised case may leave a zero)."""
    intake = {
        (r.region_code, r.day, r.source, r.category_id, r.cases)
        for r in session.scalars(select(DailyIntake))
        if r.cases
    }
    closures = {
        (r.region_code, r.day, r.dispatched, r.closed, r.closed_on_time)
        for r in session.scalars(select(DailyClosures))
    }
    return intake, closures


def summaries(session: Session, code: str, now: datetime) -> tuple[dict[str, Any], ...]:
    """The summary of a region from the roll-up and counted directly."""
    scope = service.scope_for(session, ADMIN, code, DISTRICT)
    assert service.rolled_up(scope, rollup.ZONE) and not service.rolled_up(scope, SAME_DAYS)
    return tuple(
        service.summary(session, ADMIN, scope, now, zone).model_dump(exclude={"generated_at"})
        for zone in (rollup.ZONE, SAME_DAYS)
    )


def assert_same(session: Session, codes: list[str], now: datetime) -> int:
    """The roll-up's summaries equal the direct ones; returns the cases they counted."""
    counted = 0
    for code in codes:
        rolled, direct = summaries(session, code, now)
        assert rolled == direct, code
        counted += sum(rolled["trend"]["intake"])
    return counted


# --- through the service layer ----------------------------------------------------------------


@settings(
    max_examples=8,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(data=st.data())
def test_hooks_keep_the_rollup_of_random_histories(session: Session, data: st.DataObject) -> None:
    example = session.begin_nested()
    try:
        before = stored(session)
        run = Run(session, cast_for(session))
        play(run, data)
        session.flush()
        kept = stored(session)
        assert rollup.rebuild(session) >= 0
        assert stored(session) == kept
        if run.cases:
            assert kept != before
        grid = run.cases[0].region_code
        for now in (run.now, run.now + timedelta(days=3)):
            assert_same(session, [DISTRICT, grid[:9], grid[:12], grid], now)
    finally:
        example.rollback()
        session.expunge_all()


# --- written directly, rebuilt ----------------------------------------------------------------

ACTIONS = ("dispatch", "self_handle", "verify_ok", "verify_ok", "accept", "report_done", "rate")
SOURCES = ("hotline", "citizen", "grid_worker", "department")


@pytest.mark.parametrize("seed", [1, 2])
def test_rebuilt_rollup_counts_like_the_cases(session: Session, seed: int) -> None:
    r = random.Random(seed)
    zone = rollup.ZONE
    now = datetime(2026, 7, 20, 3, 30, tzinfo=UTC)
    today = datetime.combine(now.astimezone(zone).date(), time(0), tzinfo=zone)
    grids = list(session.scalars(select(Region.code).where(Region.level == "grid")))
    towns = sorted({g[:9] for g in grids})
    villages = sorted({g[:12] for g in grids})
    places = [*grids, *grids, *villages, *towns, DISTRICT, "500155001"]  # … and next door
    categories = [
        None,
        *session.scalars(select(Category.id).where(Category.parent_id.is_not(None))),
    ]
    categories = categories[:8]

    def moment() -> datetime:
        """Mostly inside the 30 days, some just before; often a tick off a local midnight."""
        day = today - timedelta(days=r.randint(-1, 34))
        if r.random() < 0.3:
            return (day + timedelta(microseconds=r.choice((-1, 0, 1)))).astimezone(UTC)
        return (day + timedelta(seconds=r.randint(0, 86_399))).astimezone(UTC)

    cases = []
    for i in range(160):
        created = min(moment(), now)
        cases.append(
            Case(
                code=f"RU{seed}{i:05d}",
                source=r.choice(SOURCES),
                category_id=r.choice(categories),
                description="驾驶舱汇总测试",
                region_code=r.choice(places),
                state=r.choice(("reported", "dispatched", "handling", "closed", "voided")),
                level="town",
                created_at=created,
                updated_at=created,
            )
        )
    session.add_all(cases)
    session.flush()
    for c in cases:
        for _ in range(r.randint(0, 4)):
            session.add(
                CaseEvent(
                    case_id=c.id,
                    at=max(moment(), c.created_at),
                    action=r.choice(ACTIONS),
                    actor_kind="person",
                    positive=r.choice((None, True, False)),
                )
            )
    session.flush()
    rollup.rebuild(session)
    codes = [DISTRICT, *towns[:3], *r.sample(villages, 3), *r.sample(grids, 4)]
    assert assert_same(session, codes, now) > 0
    # The hooks from here on: a new case and a new closure move both answers alike.
    case = Case(
        code=f"RU{seed}NEW",
        source="hotline",
        category_id=categories[-1],
        description="驾驶舱汇总测试",
        region_code=grids[0],
        level="town",
        created_at=now,
        updated_at=now,
    )
    session.add(case)
    session.flush()
    rollup.reported(session, case)
    session.add(CaseEvent(case_id=case.id, at=now, action="verify_ok", actor_kind="person"))
    rollup.event_written(session, case, "verify_ok", now, None)
    session.flush()
    assert_same(session, [DISTRICT, case.region_code[:9]], now)
