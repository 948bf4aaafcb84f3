"""Evacuation: every threatened household in exactly one status whatever the field reports and
in whatever order (a property checked against a model on random sequences), counts that always
add up, shelters that never overfill, retries that are no-ops, no way back to pending, nothing
after closing, and one task per grid worker on duty."""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import datetime, timedelta

import pytest
from hypothesis import HealthCheck, given, note, settings
from hypothesis import strategies as st
from sqlalchemy import func, inspect, select
from sqlalchemy.orm import Session

from cityops.auth.models import AuditEntry
from cityops.errors import Conflict, InvalidInput, NotFound
from cityops.geo.models import Region
from cityops.org import service as org
from cityops.warning import evacuation, workflow
from cityops.warning import service as registry
from cityops.warning.models import AT_HOME, Evacuation, EvacuationEntry, EvacuationLog, Warning
from tests.warning.conftest import GRID_1, GRID_2, NOW, Zone

PUB = workflow.Publishing()
COMMANDER = workflow.Who("person", "区指挥长")
FIELD = "网格员 龚霞凯"
STATUSES = list(evacuation.STATUSES)
HOUSEHOLDS = [f"W-HH-{n:02d}" for n in range(1, 17)]
SHELTERS = {"W-SH-SCHOOL": 8, "W-SH-HALL": 500}  # code → capacity (first choice first)
MAX_EXAMPLES = int(os.environ.get("CITYOPS_PROPERTY_EXAMPLES", "40"))


def issue(session: Session, zone: Zone, level: str = "red") -> Warning:
    warning = workflow.propose(session, zone.point, level, ["位移加速"], COMMANDER, NOW)
    workflow.confirm(session, warning, COMMANDER, NOW)
    return workflow.issue(session, warning, COMMANDER, NOW, PUB)


@pytest.fixture
def evac(session: Session, zone: Zone) -> Evacuation:
    found = evacuation.of_warning(session, issue(session, zone))
    assert found is not None
    return found


def at(minutes: int) -> datetime:
    return NOW + timedelta(minutes=minutes)


def entry_of(session: Session, evac: Evacuation, code: str) -> EvacuationEntry:
    hid = registry.get_household(session, code).id
    return session.scalars(
        select(EvacuationEntry).where(
            EvacuationEntry.evacuation_id == evac.id, EvacuationEntry.household_id == hid
        )
    ).one()


def test_opening_puts_every_household_in_the_zone_pending(
    session: Session, zone: Zone, evac: Evacuation
) -> None:
    entries = session.scalars(
        select(EvacuationEntry).where(EvacuationEntry.evacuation_id == evac.id)
    ).all()
    codes = {registry.get_household(session, c).id: c for c in zone.inside}
    assert sorted(codes[e.household_id] for e in entries) == sorted(zone.inside)
    for e in entries:
        code = codes[e.household_id]
        assert e.status == "pending" and e.persons == zone.persons[code]
        assert e.grid_code == zone.grid_of[code]
        assert e.worker_id == zone.workers[e.grid_code].id, "the grid worker on duty"
    board = evacuation.board(session, evac)
    assert board["total"] == {"households": 16, "persons": zone.total_persons}
    assert board["persons"] == {"at_home": zone.total_persons, "evacuated": 0, "sheltered": 0}
    assert [g["grid"] for g in board["grids"]] == [GRID_1, GRID_2]
    assert [s["code"] for s in board["shelters"]] == list(SHELTERS)
    # Issuing again (an update) keeps the one evacuation.
    warning = session.get(Warning, evac.warning_id)
    assert warning is not None
    workflow.update(session, warning, COMMANDER, NOW + timedelta(hours=1), PUB, note="持续")
    assert session.scalar(select(func.count()).select_from(Evacuation)) == 1
    assert session.scalar(select(func.count()).select_from(EvacuationEntry)) == 16


def test_board_counts_persons_at_home_evacuated_sheltered(
    session: Session, zone: Zone, evac: Evacuation
) -> None:
    p = zone.persons
    evacuation.set_status(session, evac, "W-HH-01", "notified", FIELD, NOW)
    evacuation.set_status(session, evac, "W-HH-02", "evacuated", FIELD, NOW)
    evacuation.set_status(session, evac, "W-HH-03", "sheltered", FIELD, NOW)  # first choice
    evacuation.set_status(
        session, evac, "W-HH-04", "sheltered", FIELD, NOW, shelter_code="W-SH-HALL"
    )
    evacuation.set_status(session, evac, "W-HH-05", "refused", FIELD, NOW, note="老人不愿走")
    evacuation.set_status(session, evac, "W-HH-06", "unreachable", FIELD, NOW)
    board = evacuation.board(session, evac)
    sheltered = p["W-HH-03"] + p["W-HH-04"]
    assert board["persons"] == {
        "at_home": zone.total_persons - p["W-HH-02"] - sheltered,
        "evacuated": p["W-HH-02"],
        "sheltered": sheltered,
    }
    assert board["by_status"]["refused"] == {"households": 1, "persons": p["W-HH-05"]}
    assert board["by_status"]["pending"]["households"] == 10
    assert {s["code"]: s["occupancy"] for s in board["shelters"]} == {
        "W-SH-SCHOOL": p["W-HH-03"],
        "W-SH-HALL": p["W-HH-04"],
    }
    grid_home = {g["grid"]: g["at_home"] for g in board["grids"]}
    assert sum(grid_home.values()) == board["persons"]["at_home"]
    # Leaving the shelter frees the place.
    evacuation.set_status(session, evac, "W-HH-03", "evacuated", FIELD, NOW)
    assert entry_of(session, evac, "W-HH-03").shelter_id is None
    assert registry.occupancy(session).get(zone.small.id, 0) == 0


def test_shelter_capacity_is_409(session: Session, zone: Zone, evac: Evacuation) -> None:
    # The school takes 8 persons: W-HH-04 (5) fits, W-HH-03 (4) does not.
    assert (zone.persons["W-HH-04"], zone.persons["W-HH-03"]) == (5, 4)
    evacuation.set_status(session, evac, "W-HH-04", "sheltered", FIELD, NOW)
    with pytest.raises(Conflict) as err:
        evacuation.set_status(session, evac, "W-HH-03", "sheltered", FIELD, NOW)
    assert err.value.field == "shelter" and "5/8" in err.value.message
    assert entry_of(session, evac, "W-HH-03").status == "pending", "unchanged"
    # Re-reporting the same household in the same shelter is not a second place.
    evacuation.set_status(session, evac, "W-HH-04", "sheltered", FIELD, NOW)
    # Another shelter has room.
    evacuation.set_status(
        session, evac, "W-HH-03", "sheltered", FIELD, NOW, shelter_code="W-SH-HALL"
    )
    assert registry.occupancy(session) == {zone.small.id: 5, zone.large.id: 4}
    with pytest.raises(InvalidInput) as bad:
        evacuation.set_status(session, evac, "W-HH-05", "sheltered", FIELD, NOW, shelter_code="X")
    assert bad.value.field == "shelter"
    # Reported sheltered again without naming a shelter: they stay where they are.
    again = evacuation.set_status(session, evac, "W-HH-03", "sheltered", FIELD, NOW)
    assert not again.changed and again.entry.shelter_id == zone.large.id


def test_no_way_back_to_pending(session: Session, evac: Evacuation) -> None:
    evacuation.set_status(session, evac, "W-HH-01", "pending", FIELD, NOW)  # still pending: fine
    evacuation.set_status(session, evac, "W-HH-01", "unreachable", FIELD, NOW)
    with pytest.raises(Conflict) as err:
        evacuation.set_status(session, evac, "W-HH-01", "pending", FIELD, NOW)
    assert err.value.field == "status"
    evacuation.set_status(session, evac, "W-HH-01", "notified", FIELD, NOW)  # reached later
    with pytest.raises(InvalidInput):
        evacuation.set_status(session, evac, "W-HH-01", "gone", FIELD, NOW)


def test_unknown_and_outside_households_are_404(
    session: Session, zone: Zone, evac: Evacuation
) -> None:
    for code in ("NO-SUCH", zone.outside[0]):
        with pytest.raises(NotFound):
            evacuation.set_status(session, evac, code, "notified", FIELD, NOW)


def test_idempotency_keys_make_retries_no_ops(
    session: Session, zone: Zone, evac: Evacuation
) -> None:
    first = evacuation.set_status(session, evac, "W-HH-01", "evacuated", FIELD, NOW, key="k-1")
    assert first.changed and first.entry.status == "evacuated"
    # Meanwhile the household reached the shelter; the phone retries its old report.
    evacuation.set_status(session, evac, "W-HH-01", "sheltered", FIELD, NOW, key="k-2")
    again = evacuation.set_status(session, evac, "W-HH-01", "evacuated", FIELD, NOW, key="k-1")
    assert not again.changed and again.entry.status == "sheltered", "the old report is not replayed"
    logs = session.scalars(select(EvacuationLog.key).order_by(EvacuationLog.id)).all()
    assert logs == ["k-1", "k-2"]
    with pytest.raises(Conflict) as err:
        evacuation.set_status(session, evac, "W-HH-02", "evacuated", FIELD, NOW, key="k-1")
    assert err.value.field == "key", "a key is one household's"
    assert entry_of(session, evac, "W-HH-02").status == "pending"


def test_closed_evacuation_is_409_with_a_record(
    session: Session, zone: Zone, evac: Evacuation
) -> None:
    evacuation.set_status(session, evac, "W-HH-01", "sheltered", FIELD, NOW, key="k-1")
    warning = session.get(Warning, evac.warning_id)
    assert warning is not None
    board = evacuation.board(session, evac)
    workflow.lift(session, warning, COMMANDER, NOW + timedelta(hours=3), PUB, note="解除")
    assert evac.state == "closed" and evac.closed_by == COMMANDER.name
    assert evac.record["by_status"] == board["by_status"]
    assert evac.record["persons"] == board["persons"] and evac.record["total"] == board["total"]
    assert evac.record["shelters"][0] == {"code": "W-SH-SCHOOL", "occupancy": 2}
    with pytest.raises(Conflict):
        evacuation.set_status(session, evac, "W-HH-02", "evacuated", FIELD, NOW)
    # A late retry of a report the server already has is still answered.
    assert not evacuation.set_status(
        session, evac, "W-HH-01", "sheltered", FIELD, NOW, key="k-1"
    ).changed
    assert evacuation.board(session, evac)["record"] == evac.record
    evacuation.close(session, evac, "again", NOW)  # closing twice keeps the first record
    assert evac.closed_by == COMMANDER.name


def test_every_change_is_logged_and_audited(session: Session, evac: Evacuation) -> None:
    evacuation.set_status(session, evac, "W-HH-01", "notified", FIELD, at(5))
    evacuation.set_status(session, evac, "W-HH-01", "evacuated", "村干部", at(9))
    rows = session.scalars(select(EvacuationLog).order_by(EvacuationLog.id)).all()
    assert [(r.from_status, r.to_status, r.who, r.at) for r in rows] == [
        ("pending", "notified", FIELD, at(5)),
        ("notified", "evacuated", "村干部", at(9)),
    ]
    audited = session.scalars(
        select(AuditEntry.summary)
        .where(AuditEntry.action == "evacuation.status")
        .order_by(AuditEntry.id)
    ).all()
    assert [(a["household"], a["from"], a["to"]) for a in audited] == [
        ("W-HH-01", "pending", "notified"),
        ("W-HH-01", "notified", "evacuated"),
    ]


def test_one_task_per_grid_worker_on_duty(session: Session, zone: Zone) -> None:
    # Tonight a covering shift: the village officer answers for grid 2 instead of its worker.
    grid_2 = session.scalars(select(Region).where(Region.code == GRID_2)).one()
    org.add_shift(
        session,
        grid=grid_2,
        person=zone.monitor,
        starts_at=NOW - timedelta(hours=1),
        ends_at=NOW + timedelta(hours=11),
        note="夜班替班",
    )
    session.flush()
    warning = issue(session, zone)
    evac = evacuation.of_warning(session, warning)
    assert evac is not None
    evacuation.set_status(session, evac, "W-HH-01", "evacuated", FIELD, NOW)
    tasks = evacuation.tasks(session, evac)
    assert [t["worker"] for t in tasks] == sorted([zone.workers[GRID_1].code, zone.monitor.code])
    by_worker = {t["worker"]: t for t in tasks}
    first = by_worker[zone.workers[GRID_1].code]
    covering = by_worker[zone.monitor.code]
    assert {h["household"] for h in first["households"]} == {
        c for c in zone.inside if zone.grid_of[c] == GRID_1
    }
    assert {h["grid"] for h in covering["households"]} == {GRID_2}
    listed = [h["household"] for t in tasks for h in t["households"]]
    assert sorted(listed) == sorted(zone.inside), "each household in exactly one task"
    assert first["open"] == len(first["households"]) - 1
    assert first["households"][-1]["household"] == "W-HH-01", "households still at home first"
    assert all(h["status"] in AT_HOME for h in first["households"][:-1])
    mine = evacuation.tasks(session, evac, zone.monitor.id)
    assert [t["worker"] for t in mine] == [zone.monitor.code]
    # The task messages went to the people on duty.
    from cityops.notify.models import Message

    sent = session.scalars(select(Message.person_id).where(Message.template == "evacuation_task"))
    assert set(sent) == {zone.workers[GRID_1].id, zone.monitor.id}


def test_nobody_on_duty_is_a_task_too(session: Session, zone: Zone) -> None:
    zone.workers[GRID_2].active = False
    session.flush()
    evac = evacuation.of_warning(session, issue(session, zone))
    assert evac is not None
    tasks = evacuation.tasks(session, evac)
    assert [t["worker"] for t in tasks] == [zone.workers[GRID_1].code, None]
    assert "无在岗网格员" in tasks[-1]["worker_name"]


# --- the property --------------------------------------------------------------------------------


@dataclass
class Model:
    """What the evacuation must look like after each accepted step."""

    persons: dict[str, int]
    status: dict[str, str]
    shelter: dict[str, str | None]
    keys: dict[str, str]  # idempotency key → household
    closed: bool = False
    logged: int = 0

    def occupancy(self, code: str) -> int:
        return sum(
            self.persons[h]
            for h, s in self.status.items()
            if s == "sheltered" and self.shelter[h] == code and not self.closed
        )

    def expect(self, household: str, status: str, shelter: str | None, key: str | None) -> str:
        """ "ok", "replay" or the name of the error the step must raise."""
        if key is not None and key in self.keys:
            return "replay" if self.keys[key] == household else "Conflict"
        if self.closed:
            return "Conflict"
        if status == "pending" and self.status[household] != "pending":
            return "Conflict"
        if status == "sheltered":
            target = self.target(household, shelter)
            stays = self.status[household] == "sheltered" and self.shelter[household] == target
            if not stays and self.occupancy(target) + self.persons[household] > SHELTERS[target]:
                return "Conflict"
        return "ok"

    def target(self, household: str, shelter: str | None) -> str:
        """Where a "sheltered" report puts the household: the shelter named, else where it
        already is, else the point's first choice."""
        return shelter or self.shelter[household] or next(iter(SHELTERS))

    def apply(self, household: str, status: str, shelter: str | None, key: str | None) -> None:
        self.shelter[household] = self.target(household, shelter) if status == "sheltered" else None
        self.status[household] = status
        if key is not None:
            self.keys[key] = household
        self.logged += 1


# Reports about a few households, so the same household is reported on again and again.
report = st.tuples(
    st.sampled_from(HOUSEHOLDS[:8]),
    st.sampled_from(STATUSES),
    st.sampled_from([None, *SHELTERS]),
    st.one_of(st.none(), st.sampled_from(["k1", "k2", "k3"])),
)


def check(session: Session, evac_id: int, model: Model) -> None:
    total_persons = sum(model.persons.values())
    per_household = session.execute(
        select(EvacuationEntry.household_id, func.count())
        .where(EvacuationEntry.evacuation_id == evac_id)
        .group_by(EvacuationEntry.household_id)
    ).all()
    assert len(per_household) == len(HOUSEHOLDS) and {n for _h, n in per_household} == {1}
    counts = evacuation.counts(session, evac_id)
    assert set(counts) == set(STATUSES)
    assert sum(c["households"] for c in counts.values()) == len(HOUSEHOLDS)
    assert sum(c["persons"] for c in counts.values()) == total_persons
    for status in STATUSES:
        expected = [h for h, s in model.status.items() if s == status]
        assert counts[status] == {
            "households": len(expected),
            "persons": sum(model.persons[h] for h in expected),
        }, status
    board = evacuation.board(session, session.get_one(Evacuation, evac_id))
    assert sum(board["persons"].values()) == total_persons
    assert sum(g["persons"] for g in board["grids"]) == total_persons
    for shelter in board["shelters"]:
        assert shelter["occupancy"] == model.occupancy(shelter["code"]) <= shelter["capacity"]
    logged = session.scalar(select(func.count()).select_from(EvacuationLog))
    assert logged == model.logged


@settings(
    max_examples=MAX_EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    reports=st.lists(report, min_size=1, max_size=30),
    close_after=st.integers(min_value=0, max_value=60),  # past the last report: never
)
def test_random_field_reports_keep_the_invariants(
    session: Session,
    zone: Zone,
    evac: Evacuation,
    reports: list[tuple[str, str, str | None, str | None]],
    close_after: int,
) -> None:
    identity = inspect(evac).identity  # the fixture's object is detached after an example
    assert identity is not None
    evac_id = identity[0]
    example = session.begin_nested()
    try:
        current = session.get_one(Evacuation, evac_id)
        model = Model(
            persons={c: zone.persons[c] for c in HOUSEHOLDS},
            status=dict.fromkeys(HOUSEHOLDS, "pending"),
            shelter=dict.fromkeys(HOUSEHOLDS),
            keys={},
        )
        for n, (household, status, shelter, key) in enumerate(reports):
            if n == close_after:
                note("close")
                evacuation.close(session, current, COMMANDER.name, NOW)
                model.closed = True
                check(session, evac_id, model)
            expected = model.expect(household, status, shelter, key)
            note(f"{household} → {status} {shelter or ''} {key or ''}: expect {expected}")
            try:
                change = evacuation.set_status(
                    session, current, household, status, FIELD, NOW, shelter_code=shelter, key=key
                )
            except (Conflict, InvalidInput, NotFound) as error:
                assert type(error).__name__ == expected, f"{expected} expected, got {error!r}"
            else:
                assert expected in ("ok", "replay"), f"{expected} expected, the step succeeded"
                if expected == "ok":
                    model.apply(household, status, shelter, key)
                    assert change.entry.status == status
                else:
                    assert not change.changed
            check(session, evac_id, model)
    finally:
        example.rollback()
        # SQLite hands the rolled-back ids out again: forget every object of this example.
        session.expunge_all()
