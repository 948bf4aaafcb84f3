"""Property-based test of the case lifecycle (DESIGN §6 "Cases").

Random sequences of actions by realistic people are driven straight against the service layer
(``intake.report`` and ``lifecycle.act``) on a fake clock. Each example reports one to three cases
in 太康村's grid, then takes up to 25 steps; each step moves the clock on (minutes to days),
picks a case and either

* one of the actions somebody may take now, by one of the people who may, with inputs that are
  valid or — about one attempt in ten — carry one defect (no reason, no unit, bad hours …), in
  which case the modelled error (422 or 409) is expected and nothing may change; or
* an action the chosen person may *not* take now, which must be a 409 (wrong state or level) or
  a 403 (not theirs to take) and must not touch anything.

Every attempt runs in a SAVEPOINT, and every example in one more, rolled back at its end.

After every step these invariants are checked on every case of the example:

1. A closed case was closed by ``verify_ok`` from someone holding ``cases:verify``.
2. The timeline is a chain: each event starts in the state the previous one ended in (from
   ``reported``, since intake writes no event) and the last one ends in the case's state.
   ``merged_in`` (written on the master) and ``problem`` (a follow-up) are links like any other.
3. While the same clock runs (same ``clock_started_at``) the deadline only moves later; a new
   clock starts at ``now`` and only by dispatch, self-handling or rework; the deadline is always
   the one the clock's terms give (start + limit + time parked, on the category's calendar).
4. ``rework_count`` = ``verify_fail`` + unsatisfied ``rate`` events; ``units_passed`` = distinct
   lead units among the case's assignments; ``is_problem`` iff either reaches 3, once true stays
   true, with exactly one ``problem`` event.
5. Ladder steps (``next_clock_at``) only for dispatched or handling cases, which always have a
   deadline; parked, handled, closed and final cases have none.
6. A merged case points at another case that is not itself merged, and its followers were
   copied to it; the master's timeline has the ``merged_in`` event.
7. Final states (rejected, merged, voided) allow no action to anyone.
8. Assignments: a dispatched/handling/handled case has exactly one active lead assignment, of its
   current unit; a reported/registered case has none.
9. A pending extension request belongs to the running clock (it was requested after the clock
   started), and a case has at most one.
10. Liveness: a dispatched or handling case has somebody in its lead unit who may work it.

A scripted tour checks the same invariants along a long path random runs seldom reach. The
product bugs the random runs found (all fixed) are pinned by the ``test_bug_*`` regression tests
at the end. ``Known`` can switch a pattern's checks off while a newly found bug is being fixed.
``CITYOPS_PROPERTY_EXAMPLES`` sets how many examples to run.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from hypothesis import HealthCheck, event, given, note, settings
from hypothesis import strategies as st
from hypothesis.control import currently_in_test_context
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from cityops.auth.permissions import Permission, permissions_of
from cityops.auth.principal import Principal
from cityops.catalog import service as catalog
from cityops.errors import CityOpsError, Conflict, Forbidden, InvalidInput
from cityops.events import intake, lifecycle
from cityops.events.lifecycle import RULES, Action, ActionInput
from cityops.events.models import (
    FINAL_STATES,
    OPEN_STATES,
    Assignment,
    Case,
    CaseEvent,
    Extension,
    Follower,
    State,
)
from cityops.geo.models import Region
from cityops.org.models import Person, PersonRole, Unit

S = State
DISTRICT, YIHE, GRID = "500154", "500154024", "500154024003001"
START = datetime(2026, 7, 6, 1, 0, tzinfo=UTC)  # Monday 09:00 in Chongqing
CATEGORIES = ("GY01", "SR01", "DZ01")  # natural 1/4 h, working 2/24 h, natural 0.5/2 h
HANDLER_UNITS = (
    [f"DEPT-{i:02d}" for i in range(1, 22)]
    + [f"TC-{YIHE}-{s}" for s in ("DJ", "JJ", "MS", "PA")]
    + [f"VS-{YIHE}{v:03d}" for v in (1, 2, 3)]
)
NEEDS_NOTE = {
    Action.reject: "重复上报，不予立案",
    Action.return_: "不属于本单位职责",
    Action.report_done: "已处置完毕",
    Action.verify_fail: "现场核查未整改到位",
    Action.escalate: "需上级协调",
    Action.park: "等待专项资金",
    Action.void: "误报，作废",
    Action.request_extension: "需要专业队伍",
}
CLOCK_STARTERS = {Action.dispatch, Action.self_handle, Action.verify_fail, Action.rate}
TICKING = {S.dispatched.value, S.handling.value}
WITH_LEAD = {S.dispatched.value, S.handling.value, S.handled.value}


# --- the cast ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Cast:
    """The people who act in the examples, by label."""

    people: dict[str, Principal]

    def by_actor_id(self, actor_id: str) -> Principal:
        return next(p for p in self.people.values() if str(p.id) == actor_id)


def _principal(session: Session, person: Person, region_code: str) -> Principal:
    roles = frozenset(
        session.scalars(select(PersonRole.role).where(PersonRole.person_id == person.id))
    )
    return Principal(
        kind="person",
        id=person.id,
        name=person.name,
        roles=roles,
        permissions=permissions_of(roles),
        region_code=region_code,
        person_id=person.id,
        unit_id=person.unit_id,
        via="token",
    )


def _directory_person(
    session: Session, role: str, *, unit: str | None = None, region: str | None = None
) -> Principal:
    """The first person in the demo directory with that role (in that unit / scope)."""
    query = (
        select(Person, Region.code)
        .join(Region, Region.id == Person.region_id)
        .join(PersonRole, PersonRole.person_id == Person.id)
        .where(PersonRole.role == role)
        .order_by(Person.code)
        .limit(1)
    )
    if unit is not None:
        query = query.join(Unit, Unit.id == Person.unit_id).where(Unit.code == unit)
    else:
        query = query.where(Person.unit_id.is_(None))
    if region is not None:
        query = query.where(Region.code == region)
    row = session.execute(query).first()
    assert row is not None, (role, unit, region)
    return _principal(session, row[0], row[1])


_CASTS: dict[str, Cast] = {}


def cast_for(session: Session) -> Cast:
    """District staff, 义和镇's town desk, a handler of every unit a case can be sent to, 太康村's
    grid worker, the demo citizen (who reports) and a citizen who never reports."""
    key = str(session.get_bind().engine.url)
    if key not in _CASTS:
        dc, tc = f"DC-{DISTRICT}", f"TC-{YIHE}"
        people = {
            "intake": _directory_person(session, "intake_operator", unit=dc),
            "dispatcher": _directory_person(session, "dispatcher", unit=dc),
            "shift": _directory_person(session, "shift_leader", unit=dc),
            "inspector": _directory_person(session, "inspector", unit=dc),
            "commander": _directory_person(session, "district_commander", unit=dc),
            "town": _directory_person(session, "dispatcher", unit=tc),
            "town-shift": _directory_person(session, "shift_leader", unit=tc),
            "grid": _directory_person(session, "grid_worker", unit=f"VS-{GRID[:12]}", region=GRID),
            "citizen": _directory_person(session, "citizen"),
            "bystander": Principal(
                kind="person",
                id=0,
                name="路人",
                roles=frozenset({"citizen"}),
                permissions=permissions_of({"citizen"}),
                region_code=DISTRICT,
            ),
        }
        for code in HANDLER_UNITS:
            people[f"h:{code}"] = _directory_person(session, "handler", unit=code)
        _CASTS[key] = Cast(people)
    return _CASTS[key]


# --- tolerances for known product bugs (none open now; each had a test_bug_* test below) -------


@dataclass
class Known:
    """Switches for the patterns of known bugs; the ``test_bug_*`` tests turn them off."""

    problem_event_chain: bool = False
    self_handle_skips_problem_check: bool = False
    stale_pending_extension: bool = False
    merged_master_merged_later: bool = False
    self_handled_case_stuck: bool = False
    duplicate_followers_break_outbox: bool = False


# --- the driver -------------------------------------------------------------------------------


@dataclass
class Snapshot:
    states: tuple[tuple[str, int, int], ...]  # (state, version, events) for every case


@dataclass
class Run:
    """One example: the cases reported, the fake clock and what the invariants remember."""

    session: Session
    cast: Cast
    now: datetime = START
    known: Known = field(default_factory=Known)
    cases: list[Case] = field(default_factory=list)
    clocks: dict[int, tuple[datetime | None, datetime | None]] = field(default_factory=dict)
    problems: set[int] = field(default_factory=set)
    steps: int = 0
    done: set[str] = field(default_factory=set)
    refused: int = 0
    invalid: int = 0

    # -- intake and time --

    def report(self, who: str, source: str | None = None, category: str | None = None) -> Case:
        principal = self.cast.people[who]
        r = intake.Report(
            description="井盖缺失，有安全隐患",
            source=source,
            category=category,
            region_code=GRID,
            reporter_phone="13800001111" if who == "citizen" else None,
        )
        case, created = intake.report(self.session, principal, r, self.now)
        assert created
        self.cases.append(case)
        self.clocks[case.id] = (None, None)
        log(f"{who} reports {case.code} ({case.source}, {case.level})")
        return case

    def advance(self, delta: timedelta) -> None:
        self.now += delta

    def case(self, code: str) -> Case:
        return next(c for c in self.cases if c.code == code)

    # -- acting --

    def snapshot(self) -> Snapshot:
        counts = dict(
            self.session.execute(
                select(CaseEvent.case_id, func.count())
                .where(CaseEvent.case_id.in_([c.id for c in self.cases]))
                .group_by(CaseEvent.case_id)
            ).all()
        )
        return Snapshot(tuple((c.state, c.version, counts.get(c.id, 0)) for c in self.cases))

    def attempt(
        self,
        case: Case,
        action: Action,
        who: str,
        data: ActionInput,
        expected: type[CityOpsError] | None,
    ) -> bool:
        """Take the action in a SAVEPOINT; an error must be the expected one and change nothing."""
        principal = self.cast.people[who]
        before = self.snapshot()
        state_before = case.state
        savepoint = self.session.begin_nested()
        try:
            lifecycle.act(self.session, case, action, principal, data, self.now)
        except CityOpsError as error:
            log(f"  {who}: {action.value} {case.code} → {type(error).__name__}")
            assert expected is not None and type(error) is expected, (
                f"{who} {action.value} on {case.code} ({case.level}, {state_before}): "
                f"expected {expected and expected.__name__}, got {type(error).__name__}: {error}"
            )
            if expected in (Conflict, Forbidden) and action not in self.allowed(case, who):
                # Refused at the gate: nothing may have been touched, even in memory.
                self.session.flush()
                assert self.snapshot() == before, f"a refused {action.value} changed the case"
            savepoint.rollback()
            assert self.snapshot() == before
            if type(error) is InvalidInput:
                self.invalid += 1
            else:
                self.refused += 1
            return False
        log(f"  {who}: {action.value} {case.code} {_brief(data)} → {case.state}/{case.level}")
        assert expected is None, (
            f"{who} {action.value} on {case.code} ({state_before}) succeeded; "
            f"expected {expected.__name__}"
        )
        savepoint.commit()
        self.steps += 1
        self._check_written(case, action, principal, state_before, before.states)
        self.done.add(action.value)
        return True

    def do(self, case: Case, action: Action, who: str, **inputs: object) -> bool:
        """One scripted step (for the reproductions): attempt it, then check the invariants."""
        self.advance(timedelta(minutes=1))
        data = ActionInput(**inputs)  # type: ignore[arg-type]
        done = self.attempt(case, action, who, data, self.expected_error(case, action, who, data))
        self.check(acted=case)
        return done

    def allowed(self, case: Case, who: str) -> list[Action]:
        return lifecycle.allowed_actions(case, self.cast.people[who])

    def who_may(self, case: Case) -> dict[Action, list[str]]:
        out: dict[Action, list[str]] = {}
        for label in self.cast.people:
            for action in self.allowed(case, label):
                out.setdefault(action, []).append(label)
        return out

    def _check_written(
        self,
        case: Case,
        action: Action,
        principal: Principal,
        state_before: str,
        counts_before: tuple[tuple[str, int, int], ...],
    ) -> None:
        """A successful action wrote its event (by this actor, now); a change of state bumped the
        version (actions that only add rows — assist, extension requests — need not)."""
        i = self.cases.index(case)
        _state, version, n = counts_before[i]
        assert case.version > version if case.state != state_before else case.version >= version
        events = self.events(case)
        written = events[n:]
        assert written and written[0].action == action.value, [e.action for e in written]
        assert [e.action for e in written[1:]] in ([], ["problem"])
        main = written[0]
        assert main.from_state == state_before
        assert main.actor_id == str(principal.id) and main.at == self.now

    def events(self, case: Case) -> list[CaseEvent]:
        return list(
            self.session.scalars(
                select(CaseEvent).where(CaseEvent.case_id == case.id).order_by(CaseEvent.id)
            )
        )

    def pending_extension(self, case: Case) -> Extension | None:
        return self.session.scalar(
            select(Extension)
            .where(Extension.case_id == case.id, Extension.state == "pending")
            .order_by(Extension.id)
            .limit(1)
        )

    # -- what the service should answer --

    def expected_error(
        self, case: Case, action: Action, who: str, data: ActionInput
    ) -> type[CityOpsError] | None:
        """The error the product should raise for an allowed action with these inputs (the first
        check that fails, in the handler's order), or None for success."""
        rule = RULES[action]
        if case.state not in rule.states or case.level not in rule.levels:
            return Conflict
        if action not in self.allowed(case, who):
            return Forbidden
        if (
            action in NEEDS_NOTE
            and action is not Action.request_extension
            and not data.note.strip()
        ):
            return InvalidInput
        match action:
            case Action.register if data.category is None and case.category_id is None:
                return InvalidInput
            case Action.merge:
                master = next((c for c in self.cases if c.code == data.master), None)
                if master is None or master is case:
                    return InvalidInput
                if master.state not in OPEN_STATES or master.master_id is not None:
                    return Conflict
            case Action.dispatch:
                targets = {u.code for u in lifecycle.dispatch_targets(self.session, case)}
                if data.unit not in targets:
                    return InvalidInput
            case Action.request_extension:
                if data.hours is None or not 0 < data.hours <= lifecycle.MAX_EXTENSION_H:
                    return InvalidInput
                if not data.note.strip():
                    return InvalidInput
                if case.deadline_at is None or self.now >= case.deadline_at:
                    return Conflict
                if self.pending_extension(case) is not None:
                    return Conflict
            case Action.decide_extension:
                ext = self.session.get(Extension, data.extension_id) if data.extension_id else None
                if ext is None or ext.case_id != case.id:
                    return InvalidInput
                if ext.state != "pending":
                    return Conflict
                if data.approve is None:
                    return InvalidInput
            case Action.assist if not data.assist_units:
                return InvalidInput
            case Action.rate:
                if data.satisfied is None:
                    return InvalidInput
                closed = case.closed_at
                days = timedelta(days=lifecycle.FEEDBACK_DAYS)
                if closed is None or self.now - closed > days or case.satisfied is not None:
                    return Conflict
        return None

    # -- invariants --

    def check(self, acted: Case | None = None) -> None:
        for case in self.cases:
            self._check_case(case, acted)

    def _check_case(self, case: Case, acted: Case | None) -> None:
        events = self.events(case)
        actions = [e.action for e in events]
        where = f"{case.code} ({case.level}, {case.state}) {actions}"

        # 1. closed by a verifier
        if case.state == S.closed:
            closing = [e for e in events if e.to_state == S.closed and e.from_state != S.closed]
            assert closing and closing[-1].action == Action.verify_ok, where
            closer = self.cast.by_actor_id(closing[-1].actor_id)
            assert closer.can(Permission.cases_verify), where
            assert case.closed_at is not None, where

        # 2. the timeline is a chain of states
        state = S.reported.value
        for prev, e in zip([None, *events], events, strict=False):
            if (
                self.known.problem_event_chain
                and e.action == "problem"
                and prev is not None
                and e.from_state != state
                and prev.to_state == e.to_state
            ):
                # see test_bug_problem_event_breaks_the_timeline_chain
                state = e.to_state or state
                continue
            assert e.from_state == state, f"{where}: event #{e.id} {e.action} from {e.from_state}"
            assert e.to_state is not None, where
            state = e.to_state
        assert state == case.state, where

        # 3. clocks: deadlines only move later on the same clock; new clocks start now
        started, deadline = case.clock_started_at, case.deadline_at
        old_started, old_deadline = self.clocks.get(case.id, (None, None))
        if started != old_started:
            assert case is acted and started == self.now, f"{where}: clock restarted"
            assert events[-1].action in {a.value for a in CLOCK_STARTERS} | {"problem"}, where
        elif old_deadline is not None and deadline is not None:
            assert deadline >= old_deadline, f"{where}: deadline {old_deadline} → {deadline}"
        if deadline is not None:
            assert started is not None and case.limit_hours is not None, where
            expected = catalog.calendar().add(
                started, case.limit_hours + case.paused_hours, working=case.clock == "working"
            )
            assert deadline == expected, f"{where}: deadline {deadline} ≠ {expected}"
        self.clocks[case.id] = (started, deadline)

        # 4. counters agree with the timeline and the assignments
        reworks = actions.count("verify_fail") + sum(
            1 for e in events if e.action == "rate" and e.data.get("satisfied") is False
        )
        assert case.rework_count == reworks, where
        leads = self.session.scalar(
            select(func.count(func.distinct(Assignment.unit_id))).where(
                Assignment.case_id == case.id, Assignment.role == "lead"
            )
        )
        assert case.units_passed == leads, where
        due = case.rework_count >= lifecycle.PROBLEM_REWORKS or (
            case.units_passed >= lifecycle.PROBLEM_UNITS
        )
        if self.known.self_handle_skips_problem_check and due and not case.is_problem:
            due = _problem_checkpoint_reached(events)  # see test_bug_self_handle_*
        assert case.is_problem == due, f"{where}: problem={case.is_problem}"
        assert actions.count("problem") == int(case.is_problem), where
        assert case.id not in self.problems or case.is_problem, where
        if case.is_problem:
            self.problems.add(case.id)

        # 5. ladder steps only while the clock runs
        if case.state in TICKING:
            assert case.deadline_at is not None and case.next_clock_at is not None, where
        else:
            assert case.next_clock_at is None, where

        # 6. merged cases
        if case.state == S.merged:
            master = self.session.get(Case, case.master_id) if case.master_id else None
            assert master is not None and master.id != case.id, where
            # see test_bug_a_master_can_be_merged_after_taking_duplicates
            if not (self.known.merged_master_merged_later and master.state == S.merged):
                assert master.state != S.merged and master.master_id is None, (
                    f"{where}: master {master.code} is {master.state}"
                )
            mine = _followers(self.session, case.id)
            assert mine <= _followers(self.session, master.id), where
            merged_in = [e for e in self.events(master) if e.action == "merged_in"]
            assert any(e.data.get("duplicate") == case.code for e in merged_in), where
        else:
            assert case.master_id is None, where

        # 7. final states are final
        if case.state in FINAL_STATES:
            for label in self.cast.people:
                assert self.allowed(case, label) == [], f"{where}: {label} may act"

        # 8. assignments
        active_leads = list(
            self.session.scalars(
                select(Assignment.unit_id).where(
                    Assignment.case_id == case.id,
                    Assignment.role == "lead",
                    Assignment.active.is_(True),
                )
            )
        )
        if case.state in WITH_LEAD:
            assert active_leads == [case.current_unit_id] and case.current_unit_id, where
        elif case.state in (S.reported, S.registered):
            assert active_leads == [] and case.current_unit_id is None, where

        # 9. pending extensions belong to the running clock
        pending = list(
            self.session.scalars(
                select(Extension).where(Extension.case_id == case.id, Extension.state == "pending")
            )
        )
        assert len(pending) <= 1, where
        stale = [
            p
            for p in pending
            if case.state not in TICKING | {S.parked.value}
            or case.clock_started_at is None
            or p.requested_at < case.clock_started_at
        ]
        if not self.known.stale_pending_extension:  # see test_bug_pending_extension_*
            assert not stale, f"{where}: stale pending extension {stale[0].id}"

        # 10. someone can work a dispatched or handling case
        if case.state in TICKING:
            workers = [
                label
                for label in self.cast.people
                if {Action.report_done, Action.accept, Action.return_}
                & set(self.allowed(case, label))
            ]
            handler_units = {
                p.unit_id for label, p in self.cast.people.items() if label.startswith("h:")
            }
            stuck_ok = (
                self.known.self_handled_case_stuck
                and "self_handle" in actions
                and case.current_unit_id not in handler_units
            )  # see test_bug_case_self_handled_by_the_town_desk_is_stuck
            if not stuck_ok:
                assert workers, f"{where}: nobody in its unit may work it"


def log(message: str) -> None:
    """A line of the example's story, printed by hypothesis when the example fails."""
    if currently_in_test_context():
        note(message)


def _problem_checkpoint_reached(events: list[CaseEvent]) -> bool:
    """Whether the counters were at the problem threshold at some dispatch or rework — the only
    places the product checks them (self-handling does not)."""
    units: set[int | None] = set()
    reworks = 0
    for e in events:
        if e.action in ("dispatch", "self_handle"):
            units.add(e.unit_id)
        reopened = e.action == "rate" and e.data.get("satisfied") is False
        reworks += e.action == "verify_fail" or reopened
        checked = e.action in ("dispatch", "verify_fail") or reopened
        if checked and (
            reworks >= lifecycle.PROBLEM_REWORKS or len(units) >= lifecycle.PROBLEM_UNITS
        ):
            return True
    return False


def _followers(session: Session, case_id: int) -> set[tuple[int | None, str | None]]:
    rows = session.execute(
        select(Follower.person_id, Follower.phone).where(Follower.case_id == case_id)
    )
    return {(person_id, phone) for person_id, phone in rows}


def _brief(data: ActionInput) -> str:
    fields = {
        k: v
        for k, v in vars(data).items()
        if v not in (None, "", ()) and not (isinstance(v, list) and not v)
    }
    return " ".join(f"{k}={v}" for k, v in fields.items())


# --- strategies -------------------------------------------------------------------------------

Draw = Callable[[st.SearchStrategy[Any]], Any]

# Waits: mostly minutes (so extensions are asked before short deadlines), sometimes hours or
# days (deadlines pass, feedback windows close).
DELAYS = st.sampled_from(["minutes"] * 3 + ["hours"] * 2 + ["days"]).flatmap(
    lambda unit: st.integers(1, {"minutes": 90, "hours": 30, "days": 10}[unit]).map(
        lambda n: timedelta(**{unit: n})
    )
)
# How often an action is picked when somebody may take it: the loop forward more than the
# exits (reject, merge, void) so that examples get far.
WEIGHTS = {
    Action.register: 10,
    Action.reject: 1,
    Action.merge: 1,
    Action.dispatch: 10,
    Action.delegate: 2,
    Action.self_handle: 2,
    Action.accept: 10,
    Action.return_: 2,
    Action.report_done: 10,
    Action.verify_ok: 6,
    Action.verify_fail: 5,
    Action.escalate: 1,
    Action.park: 1,
    Action.unpark: 6,
    Action.void: 1,
    Action.request_extension: 3,
    Action.decide_extension: 6,  # 1 while nothing is pending
    Action.assist: 1,
    Action.rate: 8,
}


def draw_input(draw: Draw, run: Run, case: Case, action: Action) -> ActionInput:
    """Valid inputs for the action, or — about one time in ten — inputs with one defect."""
    sloppy = draw(st.integers(0, 9)) == 9
    data = ActionInput(note=NEEDS_NOTE.get(action, ""))
    if sloppy and action in NEEDS_NOTE:
        data.note = draw(st.sampled_from(["", "   "]))
        return data
    match action:
        case Action.register:
            if case.category_id is None and sloppy:
                return data
            if case.category_id is None or draw(st.booleans()):
                data.category = draw(st.sampled_from(CATEGORIES))
            data.urgency = draw(st.sampled_from([None, "normal", "urgent"]))
        case Action.merge:
            others = [c.code for c in run.cases if c is not case]
            if others and not sloppy:
                data.master = draw(st.sampled_from(others))
        case Action.dispatch:
            targets = [u.code for u in lifecycle.dispatch_targets(run.session, case)]
            if sloppy:
                data.unit = f"TC-{YIHE}-MS" if case.level == "district" else "DEPT-08"
            else:
                data.unit = draw(st.sampled_from(targets))
                data.category = draw(st.sampled_from([None, *CATEGORIES]))
                data.assist_units = draw(
                    st.lists(st.sampled_from(targets), max_size=2, unique=True)
                )
        case Action.request_extension:
            hours = [0.0, 721.0] if sloppy else [0.5, 1.0, 4.0, 24.0, 72.0]
            data.hours = draw(st.sampled_from(hours))
        case Action.decide_extension:
            pending = run.pending_extension(case)
            if pending is not None and not sloppy:
                data.extension_id = pending.id
                data.approve = draw(st.booleans())
            else:
                decided = run.session.scalar(
                    select(Extension.id).where(
                        Extension.case_id == case.id, Extension.state != "pending"
                    )
                )
                data.extension_id = decided
                data.approve = True
        case Action.assist if not sloppy:
            data.assist_units = draw(
                st.lists(st.sampled_from(HANDLER_UNITS), min_size=1, max_size=2, unique=True)
            )
        case Action.rate if not sloppy:
            data.satisfied = draw(st.booleans())
    return data


def play(run: Run, data: st.DataObject) -> None:
    """Report 1–3 cases, then take up to 25 steps, checking the invariants after each."""
    draw = data.draw
    reporters = [("citizen", None), ("intake", "hotline"), ("grid", None)]
    for _ in range(draw(st.integers(1, 3), label="cases")):
        who, source = draw(st.sampled_from(reporters), label="reporter")
        if run.known.duplicate_followers_break_outbox:
            reporters.remove((who, source))  # see test_bug_merging_two_reports_of_one_person
        category = draw(st.sampled_from([None, None, *CATEGORIES]), label="category")
        run.report(who, source, category)
    run.check()
    for _ in range(draw(st.sampled_from(range(1, 26)), label="steps")):
        if all(c.state in FINAL_STATES for c in run.cases):
            break
        run.advance(draw(DELAYS, label="wait"))
        note(f"now {run.now:%m-%d %H:%M}")
        live = [c.code for c in run.cases if c.state not in FINAL_STATES]
        if draw(st.integers(0, 9), label="any case") == 9:
            live = [c.code for c in run.cases]
        case = run.case(draw(st.sampled_from(live), label="case"))
        may = run.who_may(case)
        if may and draw(st.integers(0, 5), label="refuse") < 5:
            weights = WEIGHTS | (
                {} if run.pending_extension(case) else {Action.decide_extension: 1}
            )
            weighted = [a for a in sorted(may) for _ in range(weights[a])]
            action = draw(st.sampled_from(weighted), label="action")
            who = draw(st.sampled_from(may[action]), label="who")
            inputs = draw_input(draw, run, case, action)
        else:
            who = draw(st.sampled_from(sorted(run.cast.people)), label="who")
            refusable = [a for a in Action if a not in run.allowed(case, who)]
            if not refusable:
                continue
            action = draw(st.sampled_from(refusable), label="action")
            inputs = ActionInput(note="x", hours=1, satisfied=True, approve=True)
        run.attempt(case, action, who, inputs, run.expected_error(case, action, who, inputs))
        run.check(acted=case)


# --- the property -----------------------------------------------------------------------------

# About 0.25 s an example on SQLite and twice that on PostgreSQL; the suite's budget allows 60
# per backend. Set CITYOPS_PROPERTY_EXAMPLES=2000 for a longer hunt.
MAX_EXAMPLES = int(os.environ.get("CITYOPS_PROPERTY_EXAMPLES", "60"))


@settings(
    max_examples=MAX_EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(data=st.data())
def test_lifecycle_invariants_hold_for_random_action_sequences(
    session: Session, data: st.DataObject
) -> None:
    example = session.begin_nested()
    try:
        run = Run(session, cast_for(session))
        play(run, data)
        if run.refused:
            event("some action refused (403/409) and nothing changed")
        if run.invalid:
            event("some input rejected (422) and nothing changed")
        for action in sorted(run.done):
            event(f"took {action}")
        for case in run.cases:
            events = run.events(case)
            if any(e.action == "problem" for e in events):
                event("a problem case")
            if any(e.action == "rate" and e.data.get("satisfied") is False for e in events):
                event("a case reopened by unsatisfied feedback")
        event(f"{run.steps // 5 * 5}+ steps taken")
    finally:
        example.rollback()
        # SQLite hands the rolled-back ids out again: forget every object of this example (a
        # failing example's traceback may keep some alive) so none collides with the next one.
        session.expunge_all()


def test_the_checker_follows_a_long_district_loop(session: Session) -> None:
    """The invariants, step by step, along a path random runs reach only rarely: an extension,
    parking, three reworks (one by unsatisfied feedback) and a problem case at the district."""
    run = Run(session, cast_for(session))
    case = run.report("intake", "hotline", "DZ01")
    run.do(case, Action.register, "intake", urgency="normal")
    run.do(case, Action.dispatch, "dispatcher", unit="DEPT-08")
    run.do(case, Action.accept, "h:DEPT-08")
    run.do(case, Action.request_extension, "h:DEPT-08", hours=1.0, note="需要专业队伍")
    ext = run.pending_extension(case)
    assert ext is not None
    before = case.deadline_at
    run.do(case, Action.decide_extension, "dispatcher", extension_id=ext.id, approve=True)
    assert before is not None and case.deadline_at == before + timedelta(hours=1)
    run.do(case, Action.park, "shift", note="等待地勘结论")
    run.advance(timedelta(hours=5))
    run.do(case, Action.unpark, "shift")
    assert case.deadline_at is not None and case.deadline_at > before + timedelta(hours=5)
    for round_ in range(3):
        if round_:
            run.do(case, Action.accept, "h:DEPT-08")
        run.do(case, Action.report_done, "h:DEPT-08", note="已处置")
        if round_ == 1:
            run.do(case, Action.verify_ok, "grid")
            assert not run.do(case, Action.rate, "bystander", satisfied=False)  # 403
            run.do(case, Action.rate, "intake", satisfied=False, note="又出现裂缝")
        else:
            run.do(case, Action.verify_fail, "inspector", note="裂缝仍在扩展")
    assert (case.rework_count, case.is_problem, case.state) == (3, True, "dispatched")
    run.advance(timedelta(days=1))
    assert not run.do(case, Action.request_extension, "h:DEPT-08", hours=2.0, note="来不及")
    run.do(case, Action.accept, "h:DEPT-08")
    run.do(case, Action.report_done, "h:DEPT-08", note="已排危")
    run.do(case, Action.verify_ok, "inspector")
    # The rework after unsatisfied feedback is rated on its own once closed again …
    assert run.do(case, Action.rate, "intake", satisfied=True)
    assert case.satisfied is True
    assert not run.do(case, Action.rate, "intake", satisfied=True)  # … and only once: 409
    assert case.state == "closed" and run.refused == 3


# --- product bugs found by the property test: regression tests ---------------------------------
# Each scripted run checks every invariant after every step with its own bug's tolerance off.


def scripted(session: Session, **strict: bool) -> Run:
    return Run(session, cast_for(session), known=Known(**strict))


def test_bug_problem_event_breaks_the_timeline_chain(session: Session) -> None:
    run = scripted(session, problem_event_chain=False)
    case = run.report("citizen")
    run.do(case, Action.register, "town", category="SR01")
    for unit in (f"TC-{YIHE}-MS", f"TC-{YIHE}-PA"):
        run.do(case, Action.dispatch, "town", unit=unit)
        run.do(case, Action.return_, f"h:{unit}", note="非本单位职责")
    run.do(case, Action.dispatch, "town", unit=f"VS-{GRID[:12]}")  # the third unit
    last = [(e.action, e.from_state, e.to_state) for e in run.events(case)[-2:]]
    assert last == [
        ("dispatch", "registered", "dispatched"),
        ("problem", "dispatched", "registered"),
    ]


def test_bug_self_handle_by_the_third_unit_skips_the_problem_check(session: Session) -> None:
    run = scripted(session, self_handle_skips_problem_check=False)
    case = run.report("citizen")
    run.do(case, Action.register, "town", category="SR01")
    for unit in (f"TC-{YIHE}-MS", f"TC-{YIHE}-PA"):
        run.do(case, Action.dispatch, "town", unit=unit)
        run.do(case, Action.return_, f"h:{unit}", note="非本单位职责")
    run.do(case, Action.delegate, "town")
    run.do(case, Action.self_handle, f"h:VS-{GRID[:12]}")  # the village station: a third unit
    assert case.units_passed == 3
    assert case.is_problem and (case.level, case.state) == ("district", "registered")


def test_bug_pending_extension_outlives_the_assignment(session: Session) -> None:
    run = scripted(session, stale_pending_extension=False)
    case = run.report("intake", "hotline")
    run.do(case, Action.register, "intake", category="DZ01")  # 2 natural hours
    run.do(case, Action.dispatch, "dispatcher", unit="DEPT-08")
    run.do(case, Action.accept, "h:DEPT-08")
    run.do(case, Action.request_extension, "h:DEPT-08", hours=4.0, note="需要专业队伍")
    run.do(case, Action.return_, "h:DEPT-08", note="不属于本单位职责")
    run.do(case, Action.dispatch, "dispatcher", unit="DEPT-17")
    assert run.do(case, Action.request_extension, "h:DEPT-17", hours=1.0, note="需要时间")


def test_bug_a_master_can_be_merged_after_taking_duplicates(session: Session) -> None:
    run = scripted(session, merged_master_merged_later=False)
    a, b, c = run.report("citizen"), run.report("grid"), run.report("intake", "citizen")
    run.do(a, Action.merge, "town", master=b.code)
    run.do(b, Action.merge, "town", master=c.code)
    assert a.master_id == c.id or b.state != S.merged


def test_bug_case_self_handled_by_the_town_desk_is_stuck(session: Session) -> None:
    run = scripted(session, self_handled_case_stuck=False)
    case = run.report("citizen")
    run.do(case, Action.register, "town", category="SR01")
    run.do(case, Action.self_handle, "town")
    assert Action.report_done in run.who_may(case) or Action.return_ in run.who_may(case)


def test_bug_merging_two_reports_of_one_person(session: Session) -> None:
    run = scripted(session, duplicate_followers_break_outbox=False)
    first, second = run.report("citizen"), run.report("citizen")
    run.do(second, Action.merge, "town", master=first.code)
    run.do(first, Action.register, "town", category="SR01")
