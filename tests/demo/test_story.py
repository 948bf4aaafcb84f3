"""The July rainstorm story, played to the end on each backend: the warning goes proposed →
confirmed → issued → lifted with valid CAP messages, the level climbs one step at a time, and
every household of 老沟湾 is out and accounted for when the evacuation closes."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session, sessionmaker

from cityops import migrate
from cityops.alarms import rules
from cityops.auth import audit
from cityops.auth.models import AuditEntry
from cityops.db import make_engine, session_factory, transaction, utcnow
from cityops.demo import devices, district, story, warnings
from cityops.telemetry.directory import DIRECTORY
from cityops.telemetry.models import Device, Reading
from cityops.warning import cap
from cityops.warning.models import (
    AT_HOME,
    LEVEL_RANK,
    CapMessage,
    Evacuation,
    EvacuationEntry,
    EvacuationLog,
    Household,
    RiskPoint,
    Warning,
    WarningEvent,
)
from tests.dbutil import fresh_database

# A short backfill keeps the test quick; the story itself is the full 72 hours.
TIMELINE = story.Timeline(backfill_days=3)


@dataclass
class Played:
    result: story.StoryResult
    engine: Engine
    # Real time just before and just after the story ran: the story starts on the hour, so it
    # ends within the hour before ``started`` — unless an hour began during the call.
    started: datetime
    finished: datetime


@pytest.fixture(scope="module")
def played(
    backend: str, small_demo: district.DemoDistrict, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Played]:
    audit.install()
    with fresh_database(backend, tmp_path_factory.mktemp("story")) as url:
        engine = make_engine(url)
        try:
            migrate.upgrade(engine)
            now = utcnow()
            with transaction(sessionmaker(bind=engine)) as s:
                district.load(s, small_demo)
                devices.load(s, now)
                rules.load(s, rules.default_rules(), now)
            DIRECTORY.invalidate()
            with transaction(sessionmaker(bind=engine)) as s:
                warnings.seed(s, now)
            started = utcnow()
            result = story.run(session_factory(engine, writer=True), timeline=TIMELINE)
            yield Played(result, engine, started, utcnow())
        finally:
            DIRECTORY.invalidate()
            engine.dispose()


def test_the_warning_goes_the_whole_way(played: Played) -> None:
    r = played.result
    assert r.warning is not None and r.warning.startswith("W-")
    assert r.states == ["proposed", "confirmed", "issued", "lifted"]
    t = r.timings
    assert (
        r.start
        < t["proposed"]
        < t["confirmed"]
        < t["issued"]
        <= t["evacuation_opened"]
        < t["everyone_out"]
        < t["lifted"]
        <= r.end
        <= played.finished
    )
    assert played.started - timedelta(hours=1) < r.end  # it ends at about real now
    with Session(played.engine) as s:
        warning = s.scalar(select(Warning).where(Warning.code == r.warning))
        assert warning is not None and warning.state == "lifted"
        assert warning.source == "analytics" and warning.confirmed_by == warning.closed_by
        actions = list(
            s.scalars(
                select(WarningEvent.action)
                .where(WarningEvent.warning_id == warning.id)
                .order_by(WarningEvent.id)
            )
        )
        assert actions[0] == "proposed" and actions[-1] == "lifted"
        assert actions.index("confirmed") < actions.index("issued") < actions.index("updated")
        # The commander's steps are on the audit log under his name.
        names = set(
            s.scalars(
                select(AuditEntry.actor_name).where(
                    AuditEntry.entity == "warnings", AuditEntry.actor_kind == "person"
                )
            )
        )
        assert names == {warning.confirmed_by}


def test_cap_messages_run_from_alert_to_cancel_and_validate(played: Played) -> None:
    types = [t for t, _level in played.result.cap]
    assert types[0] == "Alert" and types[-1] == "Cancel"
    assert set(types[1:-1]) == {"Update"} and len(types) >= 3
    with Session(played.engine) as s:
        messages = list(s.scalars(select(CapMessage).order_by(CapMessage.id)))
    assert [m.msg_type for m in messages] == types
    for m in messages:
        assert cap.validate(m.xml.encode("utf-8")) == [], m.identifier
    assert "<references>" in messages[-1].xml


def test_the_level_climbs_one_step_at_a_time(played: Played) -> None:
    levels = played.result.levels
    assert "red" in levels
    rising = levels[: levels.index("red") + 1]
    assert rising[-4:] == ["blue", "yellow", "orange", "red"]
    ranks = [LEVEL_RANK[x] for x in rising]
    assert ranks == sorted(ranks) and len(set(ranks)) == len(ranks)
    # Red is never one reading: the hour before the first red was already orange.
    hourly = [level for _at, level in played.result.evaluations]
    first_red = hourly.index("red")
    assert hourly[first_red - 1] == "orange"
    assert hourly.count("red") >= 3
    # … and it all ends calm.
    assert LEVEL_RANK[hourly[-1]] < LEVEL_RANK["yellow"]


def test_everyone_is_out_and_accounted_for(played: Played) -> None:
    record = played.result.evacuation
    with Session(played.engine) as s:
        point = s.scalar(select(RiskPoint).where(RiskPoint.code == "LGW"))
        assert point is not None
        evac = s.scalar(select(Evacuation).where(Evacuation.risk_point_id == point.id))
        assert evac is not None and evac.state == "closed" and evac.record == record
        # The close watch (hourly analysis steps) ends with the story.
        assert "step_h" not in point.settings
        entries = list(
            s.scalars(select(EvacuationEntry).where(EvacuationEntry.evacuation_id == evac.id))
        )
        refused = s.scalars(
            select(Household.code)
            .join(EvacuationEntry, EvacuationEntry.household_id == Household.id)
            .join(EvacuationLog, EvacuationLog.entry_id == EvacuationEntry.id)
            .where(EvacuationLog.to_status == "refused")
        ).all()
    total = record["total"]
    assert (total["households"], total["persons"]) == (point.households, point.persons) == (27, 80)
    by_status = record["by_status"]
    assert sum(v["households"] for v in by_status.values()) == total["households"]
    assert sum(v["persons"] for v in by_status.values()) == total["persons"]
    assert by_status["pending"] == {"households": 0, "persons": 0}
    assert all(by_status[s]["persons"] == 0 for s in AT_HOME)
    assert record["persons"]["at_home"] == 0
    assert by_status["evacuated"]["households"] == 2  # with relatives
    assert {e.status for e in entries} == {"evacuated", "sheltered"}
    assert len(refused) == 1  # refused at first, then agreed …
    sheltered = {e.household_id for e in entries if e.status == "sheltered"}
    assert len(sheltered) == 25  # … and is among the sheltered
    assert sum(sh["occupancy"] for sh in record["shelters"]) == by_status["sheltered"]["persons"]


def test_every_reading_is_in_the_past_and_the_story_tells_itself(played: Played) -> None:
    with Session(played.engine) as s:
        newest = s.scalar(
            select(Reading.ts)
            .join(Device, Device.id == Reading.device_id)
            .where(Device.site == "LGW")
            .order_by(Reading.ts.desc())
            .limit(1)
        )
    assert newest is not None
    assert datetime.fromtimestamp(newest / 1000, UTC) <= played.finished
    lines = [step.line() for step in played.result.steps]
    assert all(line.startswith("[故事] ") for line in lines)
    assert any("雨量计 RG-1 1 小时雨量 36.0 mm" in line for line in lines)
    assert any("拒绝转移" in line for line in lines)
    assert any("CAP Cancel" in line for line in lines)


def test_a_second_story_refuses_to_mix_with_the_first(played: Played) -> None:
    with pytest.raises(story.StoryError, match="老沟湾"):
        story.run(session_factory(played.engine, writer=True), timeline=TIMELINE)


def test_the_clock_runs_faster_than_real_time() -> None:
    start = datetime(2026, 7, 10, tzinfo=UTC)
    clock = story._Clock(start, 3600.0, threading.Event())
    began = time.monotonic()
    assert clock.wait_until(start + timedelta(minutes=6))  # 0.1 s of real time
    assert 0.09 <= time.monotonic() - began < 1.0
    stopped = threading.Event()
    stopped.set()
    assert not story._Clock(start, 1.0, stopped).wait_until(start + timedelta(days=1))
