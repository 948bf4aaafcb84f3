"""Synthetic case history for the benchmarks, and bulk loaders that write it fast.

``History`` streams a realistic case history over the demo district already in the database
(read by ``read_world``), in chunks of cases in the order they were reported: each case with its
timeline as the lifecycle would have written it (register, delegate, dispatch, return, accept,
ladder steps, report_done, verify_ok/verify_fail, rate, extensions, park, void …), its lead
assignments, its follower and its clock. Recent cases are cut off at ``now`` mid-way, so the
open queues fill the way they do in a running center; a few older ones are stuck open.

The loaders bypass the service layer: Core executemany on SQLite, ``COPY`` on PostgreSQL, with
the secondary indexes dropped for the load and rebuilt afterwards from their own DDL.
"""

from __future__ import annotations

import json
import multiprocessing
import queue
import random
import traceback
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
from sqlalchemy import Connection, select, text
from sqlalchemy.orm import Session

from cityops.catalog import service as catalog
from cityops.catalog.models import Category
from cityops.demo.simulator import PHRASES
from cityops.events.clocks import LADDER
from cityops.events.intake import DISTRICT_INTAKE
from cityops.events.lifecycle import (
    ACCEPT_WITHIN,
    FEEDBACK_DAYS,
    LADDER_NOTES,
    LADDER_STEPS,
    MAX_EXTENSION_H,
)
from cityops.geo.models import Region
from cityops.org.models import Person, PersonRole, Unit

CASE_COLUMNS = (
    "id",
    "code",
    "source",
    "category_id",
    "description",
    "address",
    "lon",
    "lat",
    "region_code",
    "urgency",
    "state",
    "resume_state",
    "level",
    "current_unit_id",
    "reporter_name",
    "reporter_phone",
    "reporter_person_id",
    "master_id",
    "idempotency_key",
    "clock",
    "clock_started_at",
    "limit_hours",
    "paused_hours",
    "paused_at",
    "deadline_at",
    "clock_step",
    "next_clock_at",
    "rework_count",
    "units_passed",
    "is_problem",
    "overdue",
    "satisfied",
    "created_at",
    "updated_at",
    "closed_at",
    "version",
)
EVENT_COLUMNS = (
    "id",
    "case_id",
    "at",
    "action",
    "actor_kind",
    "actor_id",
    "actor_name",
    "actor_unit_id",
    "unit_id",
    "from_state",
    "to_state",
    "note",
    "data",
    "positive",
)
ASSIGNMENT_COLUMNS = ("id", "case_id", "unit_id", "role", "active", "assigned_at", "accepted_at")
FOLLOWER_COLUMNS = ("id", "case_id", "person_id", "name", "phone", "since")
EXTENSION_COLUMNS = (
    "id",
    "case_id",
    "hours",
    "reason",
    "state",
    "requested_by",
    "requested_at",
    "decided_by",
    "decided_at",
)
TABLES: dict[str, tuple[str, ...]] = {
    "cases": CASE_COLUMNS,
    "case_events": EVENT_COLUMNS,
    "case_assignments": ASSIGNMENT_COLUMNS,
    "case_followers": FOLLOWER_COLUMNS,
    "case_extensions": EXTENSION_COLUMNS,
}

SOURCES = ("grid_worker", "citizen", "hotline", "inspector", "department")
SOURCE_CUM = (35, 60, 85, 95, 100)  # as the demo simulator weighs its channels
DISTRICT_SOURCES = frozenset(s.value for s in DISTRICT_INTAKE)
# What becomes of a case given time (recent cases are also cut short by ``now``): per mille.
FATES = (
    ("closed", 925),
    ("rejected", 20),
    ("merged", 12),
    ("voided", 5),
    ("parked", 4),
    ("reported", 2),
    ("registered", 4),
    ("dispatched", 11),
    ("handling", 11),
    ("handled", 6),
)
FATE_NAMES = tuple(f for f, _ in FATES)
FATE_CUM = tuple(np.cumsum([w for _, w in FATES]).tolist())
# Local (Asia/Shanghai) hour of day a problem is reported: quiet nights, busy mornings.
HOUR_WEIGHTS = (1, 1, 1, 1, 1, 2, 4, 8, 12, 12, 11, 10, 9, 10, 11, 11, 10, 9, 8, 6, 5, 4, 2, 1)
LOCAL = timedelta(hours=8)  # Asia/Shanghai, no DST
DONE_NOTES = ("已现场处置完毕", "已安排人员清理", "已修复", "已协调相关单位处理")
SURNAMES = ("张", "李", "王", "刘", "陈", "杨", "黄", "赵")


@dataclass(frozen=True)
class Actor:
    kind: str
    id: str
    name: str
    unit_id: int | None


SYSTEM = Actor("system", "0", "时限监控 / clock", None)


@dataclass(frozen=True)
class Grid:
    code: str
    lon: float
    lat: float
    station: int  # the village station's unit id
    worker: Actor  # its standing grid worker
    worker_person: int


@dataclass(frozen=True)
class Cat:
    id: int
    code: str
    working: bool
    urgent_h: float
    normal_h: float
    owner_unit_id: int | None
    phrases: tuple[str, ...]


@dataclass
class World:
    """What the demo load put in the database, as the generator needs it."""

    grids: list[Grid]
    towns: list[str]
    sections: dict[str, list[int]]  # town code → its sections' unit ids
    town_desk: dict[str, Actor]  # town code → a dispatcher at the town centre
    district_desk: Actor
    supervisor: Actor
    handlers: dict[int, Actor]  # unit id → a handler there
    categories: list[Cat]


def read_world(session: Session) -> World:
    units = {
        code: (uid, kind)
        for uid, code, kind in session.execute(select(Unit.id, Unit.code, Unit.kind))
    }
    people = session.execute(
        select(Person.id, Person.name, Person.unit_id, Region.code, PersonRole.role)
        .join(Region, Person.region_id == Region.id)
        .join(PersonRole, PersonRole.person_id == Person.id)
        .order_by(Person.id)
    ).all()
    workers: dict[str, tuple[int, Actor]] = {}
    town_desk: dict[str, Actor] = {}
    district: dict[str, Actor] = {}
    handlers: dict[int, Actor] = {}
    for pid, name, unit_id, region, role in people:
        actor = Actor("person", str(pid), name, unit_id)
        if role == "grid_worker" and len(region) == 15:
            workers.setdefault(region, (pid, actor))
        elif role == "dispatcher" and len(region) == 9:
            town_desk.setdefault(region, actor)
        elif role in ("dispatcher", "shift_leader") and len(region) == 6:
            district.setdefault(role, actor)
        if role == "handler" and unit_id is not None:
            handlers.setdefault(unit_id, actor)
    grids = [
        Grid(code, lon, lat, units[f"VS-{code[:12]}"][0], workers[code][1], workers[code][0])
        for code, lon, lat in session.execute(
            select(Region.code, Region.center_lon, Region.center_lat)
            .where(Region.level == "grid")
            .order_by(Region.code)
        )
    ]
    towns = sorted({g.code[:9] for g in grids})
    sections = {
        town: [
            uid
            for code, (uid, kind) in units.items()
            if kind == "section" and code.startswith(f"TC-{town}-")
        ]
        for town in towns
    }
    categories = [
        Cat(
            c.id,
            c.code,
            c.clock == "working",
            c.limit_urgent_h,
            c.limit_normal_h,
            c.owner_unit_id,
            tuple(PHRASES.get(c.code[:2], ())) or (f"{c.name}，请尽快处理",),
        )
        for c in session.scalars(
            select(Category).where(Category.parent_id.is_not(None), Category.active.is_(True))
        )
    ]
    return World(
        grids,
        towns,
        sections,
        town_desk,
        district["dispatcher"],
        district["shift_leader"],
        handlers,
        categories,
    )


def ts(moment: datetime) -> str:
    """A naive UTC datetime as SQLAlchemy stores it on SQLite (and PostgreSQL reads in UTC)."""
    return moment.isoformat(" ", "microseconds")


def iso(moment: datetime | None) -> str | None:
    """As the lifecycle writes a moment into event data."""
    return moment.replace(tzinfo=UTC).isoformat() if moment else None


@dataclass
class Chunk:
    rows: dict[str, list[tuple[Any, ...]]]

    @property
    def cases(self) -> int:
        return len(self.rows["cases"])

    @property
    def events(self) -> int:
        return len(self.rows["case_events"])


class History:
    """``n`` cases reported over the ``days`` before ``now`` (ids in reporting order)."""

    def __init__(
        self, world: World, n: int, now: datetime, *, days: int = 90, seed: int = 20240712
    ) -> None:
        self.world, self.n, self.days = world, n, days
        self.now = now.astimezone(UTC).replace(tzinfo=None)  # naive UTC inside
        self.r = random.Random(seed)
        self.np = np.random.default_rng(seed)
        self.calendar = catalog.calendar()
        self.next_id = {table: 1 for table in TABLES}

    def _created(self) -> np.ndarray:
        """Reporting moments, sorted, as microseconds after the start of the window."""
        start_local = (self.now + LOCAL - timedelta(days=self.days)).replace(
            hour=0, minute=0, second=0, microsecond=0
        )
        self.start = start_local - LOCAL
        span_us = int((self.now - self.start) / timedelta(microseconds=1))
        weights = np.array(HOUR_WEIGHTS, dtype=float)
        picked: list[np.ndarray] = []
        have = 0
        while have < self.n:
            k = self.n - have + self.n // 20 + 16
            day = self.np.integers(0, self.days + 1, k)
            hour = self.np.choice(24, k, p=weights / weights.sum())
            us = (day * 86_400 + hour * 3600) * 1_000_000 + self.np.integers(0, 3_600_000_000, k)
            ok = us[(us >= 0) & (us < span_us)]
            picked.append(ok)
            have += len(ok)
        return np.sort(np.concatenate(picked)[: self.n])

    def chunks(self, size: int = 20_000) -> Iterator[Chunk]:
        created = self._created()
        for lo in range(0, self.n, size):
            rows: dict[str, list[tuple[Any, ...]]] = {t: [] for t in TABLES}
            codes: list[str] = []
            for us in created[lo : lo + size].tolist():
                _Case(self, rows, codes, self.start + timedelta(microseconds=us)).run()
            yield Chunk(rows)

    def take(self, table: str) -> int:
        value = self.next_id[table]
        self.next_id[table] = value + 1
        return value

    # Clock arithmetic on naive UTC, as cityops.events.clocks does on aware datetimes.
    def add(self, start: datetime, hours: float, working: bool) -> datetime:
        if not working:
            return start + timedelta(hours=hours)
        moment = self.calendar.add(start.replace(tzinfo=UTC), hours, working=True)
        return moment.astimezone(UTC).replace(tzinfo=None)

    def elapsed_h(self, start: datetime, end: datetime, working: bool) -> float:
        if not working:
            return (end - start) / timedelta(hours=1)
        gone = self.calendar.elapsed(
            start.replace(tzinfo=UTC), end.replace(tzinfo=UTC), working=True
        )
        return gone / timedelta(hours=1)


def _hours(h: float) -> timedelta:
    return timedelta(hours=h)


class _Stop(Exception):
    """The next step would happen after ``now``: the case stays where it is."""


class _Case:
    """One case and its timeline, written the way the lifecycle writes them."""

    def __init__(
        self,
        h: History,
        rows: dict[str, list[tuple[Any, ...]]],
        codes: list[str],
        created: datetime,
    ) -> None:
        r, w = h.r, h.world
        self.h, self.rows, self.created = h, rows, created
        self.id = h.take("cases")
        local = created + LOCAL
        self.code = f"{local.year:04d}{local.month:02d}{local.day:02d}{self.id:07d}"
        codes.append(self.code)
        self.codes = codes
        self.grid = w.grids[r.randrange(len(w.grids))]
        self.town = self.grid.code[:9]
        self.source = SOURCES[_pick(r.random() * 100, SOURCE_CUM)]
        self.cat = w.categories[r.randrange(len(w.categories))]
        self.urgency = "urgent" if r.random() < 0.15 else "normal"
        self.fate = FATE_NAMES[_pick(r.random() * FATE_CUM[-1], FATE_CUM)]
        self.level = "district" if self.source in DISTRICT_SOURCES else "town"
        self.category_id: int | None = self.cat.id
        if self.source == "citizen" and self.fate == "reported":
            self.category_id = None  # a citizen who did not choose one, not yet registered
        self.person = self.grid.worker_person if self.source == "grid_worker" else None
        if self.source in ("citizen", "hotline"):
            self.reporter_name: str | None = r.choice(SURNAMES) + r.choice(("先生", "女士"))
            self.reporter_phone: str | None = f"13{r.randint(0, 9)}{r.randint(10**7, 10**8 - 1)}"
        else:
            self.reporter_name = self.reporter_phone = None
        self.state = "reported"
        self.resume_state: str | None = None
        self.unit: int | None = None
        self.previous_unit: int | None = None
        self.lead: list[Any] | None = None  # the active lead assignment row being built
        self.assignments: list[list[Any]] = []
        self.master: int | None = None
        self.clock = "working"
        self.started: datetime | None = None
        self.limit: float | None = None
        self.paused_at: datetime | None = None
        self.deadline: datetime | None = None
        self.step = 0
        self.next_clock: datetime | None = None
        self.rework = self.passed = 0
        self.problem = self.overdue = False
        self.satisfied: bool | None = None
        self.closed_at: datetime | None = None
        self.events: list[tuple[Any, ...]] = []
        self.extensions: list[tuple[Any, ...]] = []
        self.t = created

    # --- writing --------------------------------------------------------------------------

    def desk(self) -> Actor:
        w = self.h.world
        return w.district_desk if self.level == "district" else w.town_desk[self.town]

    def handler(self) -> Actor:
        assert self.unit is not None
        return self.h.world.handlers[self.unit]

    def event(
        self,
        at: datetime,
        action: str,
        actor: Actor,
        before: str,
        *,
        unit: int | None = None,
        note: str = "",
        data: str = "{}",
        positive: bool | None = None,
    ) -> None:
        """``data``: the event's JSON, as SQLAlchemy's JSON type would serialise it."""
        self.events.append((at, action, actor, unit, before, self.state, note, data, positive))

    def later(self, mean_h: float) -> datetime:
        """The next step, an exponential wait after the last one; past ``now`` it has not
        happened yet."""
        self.t = self.t + _hours(self.h.r.expovariate(1 / mean_h))
        if self.t > self.h.now:
            raise _Stop
        return self.t

    def at(self, fraction: float) -> datetime:
        assert self.started is not None and self.limit is not None
        return self.h.add(self.started, fraction * self.limit, self.clock == "working")

    def start_clock(self, moment: datetime) -> None:
        self.clock = "working" if self.cat.working else "natural"
        self.started = moment
        self.limit = self.cat.urgent_h if self.urgency == "urgent" else self.cat.normal_h
        self.step = 0
        self.overdue = False
        self.deadline = self.at(1.0)
        self.next_clock = None  # set by running() for a clock still running at ``now``

    def stop_clock(self) -> None:
        self.next_clock = None

    def leave_units(self) -> None:
        for a in self.assignments:
            a[4] = False
        self.lead = None
        self.unit = None

    # --- the loop ------------------------------------------------------------------------

    def run(self) -> None:
        try:
            self._lifecycle()
        except _Stop:
            if self.state in ("dispatched", "handling"):
                self.running()
        self.write()

    def _lifecycle(self) -> None:
        r = self.h.r
        if self.fate == "reported" or self.category_id is None:
            return
        self.later(0.4)
        if self.fate == "rejected":
            self.state = "rejected"
            self.event(self.t, "reject", self.desk(), "reported", note="不属于受理范围")
            return
        if self.fate == "merged" and len(self.codes) > 1:
            k = r.randrange(max(0, len(self.codes) - 50), len(self.codes) - 1)
            self.master = self.id - (len(self.codes) - 1 - k)
            self.state = "merged"
            self.event(
                self.t, "merge", self.desk(), "reported", data=json.dumps({"master": self.codes[k]})
            )
            return
        self.state = "registered"
        self.event(
            self.t,
            "register",
            self.desk(),
            "reported",
            data=f'{{"category": "{self.cat.code}", "urgency": "{self.urgency}"}}',
        )
        if self.fate == "registered":
            return
        if self.fate == "voided":
            self.later(6)
            self.state = "voided"
            self.event(self.t, "void", self.h.world.supervisor, "registered", note="重复上报")
            return
        if self.level == "district" and self.cat.owner_unit_id is None:
            self.later(0.3)
            self.level = "town"
            self.event(
                self.t,
                "delegate",
                self.h.world.district_desk,
                "registered",
                data='{"level": "town"}',
            )
        returned = False
        while True:
            self.dispatch(self.later(0.5))
            if self.fate == "dispatched":
                self.stuck()
                return
            if not returned and r.random() < 0.06:
                self.later(1.5)
                returned = True
                unit, actor = self.unit, self.handler()
                self.leave_units()
                self.stop_clock()
                self.deadline = None
                self.state = "registered"
                self.event(
                    self.t,
                    "return",
                    actor,
                    "dispatched",
                    unit=unit,
                    note="非本单位职责，请重新派遣",
                )
                continue
            break
        while True:  # handling, again after each rework
            self.accept()
            if self.fate == "handling" and self.rework == 0:
                self.stuck()
                return
            if self.fate == "parked":
                self.later(8)
                self.resume_state, self.state = self.state, "parked"
                self.paused_at = self.t
                self.next_clock = None
                self.event(
                    self.t, "park", self.h.world.supervisor, "handling", note="等待汛期结束后处置"
                )
                return
            self.report_done()
            if self.fate == "handled":
                return
            self.later(4)
            if self.rework < 2 and r.random() < 0.12:
                self.rework_step("verify_fail", self.grid.worker, note="核查未通过，问题仍在")
                continue
            self.state = "closed"
            self.closed_at = self.t
            self.stop_clock()
            self.event(
                self.t,
                "verify_ok",
                self.grid.worker,
                "handled",
                unit=self.unit,
                note="现场核查通过",
                positive=not self.overdue,
            )
            if self.satisfied is not None or r.random() >= 0.6:
                return
            closed = self.t
            self.later(20)
            if self.t - closed > timedelta(days=FEEDBACK_DAYS):
                return
            happy = r.random() < 0.9
            self.satisfied = happy
            if happy:
                self.event(
                    self.t,
                    "rate",
                    self.desk(),
                    "closed",
                    unit=self.unit,
                    data='{"satisfied": true}',
                    positive=True,
                )
                return
            self.rework_step("rate", self.desk(), data={"satisfied": False}, positive=False)

    def dispatch(self, moment: datetime) -> None:
        w, r = self.h.world, self.h.r
        if self.level == "district":
            unit = self.cat.owner_unit_id
            assert unit is not None
        else:
            choices = [*w.sections[self.town], self.grid.station]
            unit = r.choice([u for u in choices if u != self.previous_unit] or choices)
        self.previous_unit = unit
        self.leave_units()
        self.lead = [0, self.id, unit, "lead", True, moment, None]
        self.assignments.append(self.lead)
        self.unit = unit
        self.passed = len({a[2] for a in self.assignments})
        self.state = "dispatched"
        self.start_clock(moment)
        self.event(
            moment,
            "dispatch",
            self.desk(),
            "registered",
            unit=unit,
            data=f'{{"deadline": "{iso(self.deadline)}", "assist": []}}',
        )

    def accept(self) -> None:
        slow = self.h.r.random() < 0.3
        moment = self.later(4.0 if slow else 0.7)
        assert self.started is not None and self.lead is not None
        self.state = "handling"
        self.lead[6] = moment
        self.event(
            moment,
            "accept",
            self.handler(),
            "dispatched",
            unit=self.unit,
            positive=moment - self.started <= ACCEPT_WITHIN,
        )

    def report_done(self) -> None:
        """Handled after a share of the time limit (some late); the worker's warnings and urging
        on the way are on the timeline."""
        assert self.started is not None and self.deadline is not None
        share = min(1.9, self.h.r.lognormvariate(-0.8, 0.5))
        span = self.deadline - self.started
        done = self.started + span * share
        if done < self.t:
            done = self.t + timedelta(minutes=5)
        for k, fraction in enumerate(LADDER[:3]):
            if share < fraction:
                break
            when = self.started + span * fraction
            if when > self.h.now:
                raise _Stop
            self.ladder(k, when)
        self.t = done
        if done > self.h.now:
            raise _Stop
        on_time = share <= 1.0
        self.overdue = self.overdue or not on_time
        self.stop_clock()
        self.state = "handled"
        self.event(
            done,
            "report_done",
            self.handler(),
            "handling",
            unit=self.unit,
            note=self.h.r.choice(DONE_NOTES),
            positive=on_time,
        )

    def ladder(self, k: int, when: datetime) -> None:
        name = LADDER_STEPS[k]
        before = self.state
        self.step = k + 1
        data: dict[str, Any] = {"step": k + 1}
        if name == "urge":
            self.overdue = True
        elif name == "auto_escalate":
            if self.level == "district":
                self.problem = True
            else:
                self.leave_units()
                self.stop_clock()
                self.deadline = None
                self.level = "district"
                self.state = "registered"
                data = {"level": "district", "step": k + 1}
        self.event(
            when,
            name,
            SYSTEM,
            before,
            unit=self.unit,
            note=LADDER_NOTES[name],
            data=json.dumps(data),
        )

    def rework_step(
        self,
        action: str,
        actor: Actor,
        *,
        note: str = "",
        data: dict[str, Any] | None = None,
        positive: bool | None = None,
    ) -> None:
        before = self.state
        self.rework += 1
        self.state = "dispatched"
        self.closed_at = None
        self.start_clock(self.t)
        assert self.lead is not None
        self.lead[6] = None
        self.event(
            self.t,
            action,
            actor,
            before,
            unit=self.unit,
            note=note,
            data=json.dumps((data or {}) | {"rework": self.rework, "deadline": iso(self.deadline)}),
            positive=positive,
        )

    def running(self) -> None:
        """A clock still running at ``now``: the ladder steps already due have been taken."""
        now = self.h.now
        while self.state in ("dispatched", "handling") and self.step < len(LADDER):
            when = self.at(LADDER[self.step])
            if when > now:
                self.next_clock = when
                return
            self.ladder(self.step, when)
        self.next_clock = None

    def stuck(self) -> None:
        """An old case still with its unit: extensions were granted along the way, so its clock
        has a good part left (recent cases are simply cut off at ``now``)."""
        assert self.started is not None and self.limit is not None
        h, r = self.h, self.h.r
        working = self.clock == "working"
        used = h.elapsed_h(self.started, h.now, working)
        wanted = used / r.uniform(0.2, 0.7)
        extra = wanted - self.limit
        if extra > 0:
            parts = int(extra // MAX_EXTENSION_H) + 1
            span = h.now - self.started
            for i in range(parts):
                hours = round(extra / parts, 1)
                asked = self.started + span * ((i + 0.5) / (parts + 1))
                decided = asked + (span / (parts + 1)) * 0.3
                before = self.deadline
                self.limit += hours
                self.deadline = self.at(1.0)
                ext = h.take("case_extensions")
                handler, desk = self.handler(), self.desk()
                self.extensions.append(
                    (
                        ext,
                        self.id,
                        hours,
                        "需协调多部门，申请延期",
                        "approved",
                        handler.name,
                        ts(asked),
                        desk.name,
                        ts(decided),
                    )
                )
                self.event(
                    asked,
                    "request_extension",
                    handler,
                    self.state,
                    unit=self.unit,
                    note="需协调多部门，申请延期",
                    data=json.dumps({"extension": ext, "hours": hours}),
                )
                self.event(
                    decided,
                    "decide_extension",
                    desk,
                    self.state,
                    unit=self.unit,
                    data=json.dumps(
                        {
                            "extension": ext,
                            "approved": True,
                            "deadline_before": iso(before),
                            "deadline_after": iso(self.deadline),
                        }
                    ),
                )
        self.running()

    # --- rows ----------------------------------------------------------------------------

    def write(self) -> None:
        h, rows = self.h, self.rows
        self.events.sort(key=lambda e: e[0])
        version = 1
        updated = self.created
        out = rows["case_events"]
        for at, action, actor, unit, before, after, note, data, positive in self.events:
            out.append(
                (
                    h.take("case_events"),
                    self.id,
                    ts(at),
                    action,
                    actor.kind,
                    actor.id,
                    actor.name,
                    actor.unit_id,
                    unit,
                    before,
                    after,
                    note,
                    data,
                    positive,
                )
            )
            version += 1
            updated = at
        for a in self.assignments:
            a[0] = h.take("case_assignments")
            rows["case_assignments"].append(
                (a[0], a[1], a[2], a[3], a[4], ts(a[5]), ts(a[6]) if a[6] else None)
            )
        rows["case_extensions"].extend(self.extensions)
        if self.person is not None or self.reporter_phone:
            rows["case_followers"].append(
                (
                    h.take("case_followers"),
                    self.id,
                    self.person,
                    self.reporter_name,
                    self.reporter_phone,
                    ts(self.created),
                )
            )
        g = self.grid
        r = h.r
        rows["cases"].append(
            (
                self.id,
                self.code,
                self.source,
                self.category_id,
                r.choice(self.cat.phrases),
                "",
                round(g.lon + r.uniform(-2e-4, 2e-4), 6),
                round(g.lat + r.uniform(-2e-4, 2e-4), 6),
                g.code,
                self.urgency,
                self.state,
                self.resume_state,
                self.level,
                self.unit,
                self.reporter_name,
                self.reporter_phone,
                self.person,
                self.master,
                None,
                self.clock,
                ts(self.started) if self.started else None,
                self.limit,
                0.0,
                ts(self.paused_at) if self.paused_at else None,
                ts(self.deadline) if self.deadline else None,
                self.step,
                ts(self.next_clock) if self.next_clock else None,
                self.rework,
                self.passed,
                self.problem,
                self.overdue,
                self.satisfied,
                ts(self.created),
                ts(updated),
                ts(self.closed_at) if self.closed_at else None,
                version,
            )
        )


def _pick(x: float, cumulative: Sequence[float]) -> int:
    for i, c in enumerate(cumulative):
        if x < c:
            return i
    return len(cumulative) - 1


def _produce(
    out: Any, world: World, n: int, now: datetime, days: int, seed: int, size: int
) -> None:
    try:
        for chunk in History(world, n, now, days=days, seed=seed).chunks(size):
            out.put(chunk)
        out.put(None)
    except BaseException:
        out.put(traceback.format_exc())
        raise


def stream(world: World, n: int, now: datetime, days: int, seed: int, size: int) -> Iterator[Chunk]:
    """``History(...).chunks(size)`` generated in a second process while the caller writes
    (at most two chunks ahead, so memory stays flat)."""
    ctx = multiprocessing.get_context("spawn")
    out = ctx.Queue(maxsize=2)
    proc = ctx.Process(target=_produce, args=(out, world, n, now, days, seed, size), daemon=True)
    proc.start()
    try:
        while True:
            try:
                item = out.get(timeout=5)
            except queue.Empty:
                if not proc.is_alive():
                    raise RuntimeError("the case generator died") from None
                continue
            if item is None:
                return
            if isinstance(item, str):
                raise RuntimeError(f"the case generator failed:\n{item}")
            yield item
    finally:
        if proc.is_alive():
            proc.terminate()
        proc.join()


# --- bulk loading ------------------------------------------------------------------------------


def secondary_indexes(conn: Connection, tables: Sequence[str]) -> list[tuple[str, str]]:
    """(name, DDL) of the indexes on ``tables`` that back no constraint: dropped for a bulk load
    and rebuilt from the same DDL afterwards."""
    if conn.dialect.name == "sqlite":
        rows = conn.execute(
            text(
                "SELECT name, sql FROM sqlite_master WHERE type = 'index' AND sql IS NOT NULL "
                "AND tbl_name IN (" + ",".join(f"'{t}'" for t in tables) + ")"
            )
        )
    else:
        rows = conn.execute(
            text(
                "SELECT indexname, indexdef FROM pg_indexes WHERE schemaname = current_schema() "
                "AND tablename = ANY(:t) AND indexname NOT IN (SELECT conname FROM pg_constraint)"
            ),
            {"t": list(tables)},
        )
    return [(name, ddl) for name, ddl in rows]


class Writer:
    """Appends chunks to the case tables in one transaction: executemany on SQLite, COPY on
    PostgreSQL."""

    def __init__(self, conn: Connection) -> None:
        self.conn = conn
        self.sqlite = conn.dialect.name == "sqlite"
        self.statements = {
            table: (
                f"INSERT INTO {table} ({', '.join(cols)}) VALUES ({', '.join('?' * len(cols))})"
                if self.sqlite
                else f"COPY {table} ({', '.join(cols)}) FROM STDIN"
            )
            for table, cols in TABLES.items()
        }

    def write(self, chunk: Chunk) -> None:
        for table, rows in chunk.rows.items():
            if not rows:
                continue
            if self.sqlite:
                self.conn.exec_driver_sql(self.statements[table], rows)
            else:
                raw = self.conn.connection.driver_connection
                assert raw is not None
                with raw.cursor() as cur, cur.copy(self.statements[table]) as copy:
                    for row in rows:
                        copy.write_row(row)
