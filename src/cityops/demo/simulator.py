"""The demo's stream of cases: a month of history driven through the real lifecycle (so queues,
clocks and evaluation have something to show) and, while the demo runs, new cases arriving and
open ones moving on. Seeded: the same seed gives the same history."""

from __future__ import annotations

import random
import threading
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session, selectinload, sessionmaker

from cityops.auth.permissions import permissions_of
from cityops.auth.principal import Principal
from cityops.catalog.models import Category
from cityops.db import utcnow
from cityops.errors import CityOpsError
from cityops.events import intake, lifecycle, routing
from cityops.events.lifecycle import Action, ActionInput
from cityops.events.models import Case, State
from cityops.geo.models import Region
from cityops.org.models import Person

PHRASES = {
    "SR": ["路边垃圾堆放多日无人清运", "小区门口建筑垃圾乱堆", "人行道上有大量油污"],
    "GY": ["井盖缺失，夜间行人容易踩空", "路灯连续几晚不亮", "消火栓漏水"],
    "DL": ["路面坑洼，车辆经过颠簸", "交通信号灯故障", "道路护栏被撞坏"],
    "JM": ["商贩占道经营影响通行", "机动车乱停放堵住消防通道", "共享单车乱停乱放"],
    "SG": ["工地夜间施工噪声扰民", "工地扬尘严重", "渣土车沿路遗撒"],
    "DZ": ["后山出现新裂缝，担心滑坡", "路边坡体有落石", "房屋墙体出现裂缝"],
    "FX": ["河道水位上涨很快", "低洼路段积水严重"],
}
SOURCE_WEIGHTS = [
    ("grid_worker", 35),
    ("citizen", 25),
    ("hotline", 25),
    ("inspector", 10),
    ("department", 5),
]


@dataclass
class Cast:
    """The people who act in the simulation, as principals."""

    district: dict[str, Principal] = field(default_factory=dict)  # role → principal
    town: dict[str, Principal] = field(default_factory=dict)  # town code → dispatcher
    unit: dict[int, Principal] = field(default_factory=dict)  # unit id → a handler there
    grid: dict[str, Principal] = field(default_factory=dict)  # grid code → grid worker
    citizen: Principal | None = None


def _principal(p: Person, region: str, roles: list[str]) -> Principal:
    return Principal(
        "person",
        0,
        p.name,
        frozenset(roles),
        permissions_of(set(roles)),
        region,
        person_id=p.id,
        unit_id=p.unit_id,
    )


def cast(session: Session) -> Cast:
    c = Cast()
    rows = session.execute(
        select(Person, Region.code)
        .join(Region, Person.region_id == Region.id)
        .options(selectinload(Person.roles))
    ).all()
    for person, region in rows:
        roles = [r.role for r in person.roles]
        if len(region) == 6:
            for role in ("intake_operator", "dispatcher", "inspector", "shift_leader"):
                if role in roles and role not in c.district:
                    c.district[role] = _principal(person, region, roles)
        if len(region) == 9 and "dispatcher" in roles:
            c.town.setdefault(region, _principal(person, region, roles))
        if "handler" in roles and person.unit_id is not None:
            c.unit.setdefault(person.unit_id, _principal(person, region, roles))
        if "grid_worker" in roles and len(region) == 15:
            c.grid.setdefault(region, _principal(person, region, roles))
    c.citizen = Principal(
        "person", 0, "群众", frozenset({"citizen"}), permissions_of({"citizen"}), "500154"
    )
    return c


class Simulator:
    def __init__(self, session: Session, seed: int = 20240712) -> None:
        self.session = session
        self.rng = random.Random(seed)
        self.cast = cast(session)
        leaves = session.scalars(
            select(Category).where(Category.parent_id.is_not(None), Category.active.is_(True))
        )
        self.categories: dict[str, list[str]] = defaultdict(list)
        for cat in leaves:
            self.categories[cat.code[:2]].append(cat.code)
        self.grids = list(
            session.execute(
                select(Region.code, Region.center_lon, Region.center_lat).where(
                    Region.level == "grid"
                )
            ).all()
        )

    def new_case(self, at: datetime) -> Case | None:
        rng = self.rng
        grid, lon, lat = rng.choice(self.grids)
        prefix = rng.choice([p for p in PHRASES if p in self.categories])
        source = rng.choices([s for s, _ in SOURCE_WEIGHTS], [w for _, w in SOURCE_WEIGHTS])[0]
        reporter = {
            "grid_worker": self.cast.grid.get(grid),
            "citizen": self.cast.citizen,
            "hotline": self.cast.district.get("intake_operator"),
            "inspector": self.cast.district.get("inspector"),
            "department": next(iter(self.cast.unit.values()), None),
        }[source]
        if reporter is None:
            return None
        category = (
            rng.choice(self.categories[prefix])
            if source != "citizen" or rng.random() < 0.5
            else None
        )
        report = intake.Report(
            rng.choice(PHRASES[prefix]),
            source=source,
            category=category,
            urgency="urgent" if rng.random() < 0.15 else "normal",
            lat=lat + rng.uniform(-1e-4, 1e-4),
            lon=lon + rng.uniform(-1e-4, 1e-4),
            reporter_name=rng.choice(["张", "李", "王", "刘", "陈"]) + rng.choice(["先生", "女士"]),
            reporter_phone=f"13{rng.randint(0, 9)}{rng.randint(10_000_000, 99_999_999)}",
            idempotency_key=f"sim-{rng.getrandbits(64):016x}",
        )
        try:
            case, _ = intake.report(self.session, reporter, report, at)
        except CityOpsError:
            return None
        return case

    def advance(self, case: Case, at: datetime) -> bool:
        """One realistic next step for an open case; False when nothing was done."""
        rng, s = self.rng, self.session
        step: tuple[Principal | None, Action, ActionInput] | None = None
        coordinator = self._coordinator(case)
        if case.state == State.reported:
            cat = case.category_id and s.get(Category, case.category_id)
            code = cat.code if cat else rng.choice(self.categories[rng.choice(list(PHRASES))])
            step = (coordinator, Action.register, ActionInput(category=code))
        elif case.state == State.registered:
            suggestions = routing.suggest(s, case)
            first = suggestions[0] if suggestions else None
            if first and first.action == "dispatch" and first.unit is not None:
                step = (coordinator, Action.dispatch, ActionInput(unit=first.unit.code))
            elif first and first.action == "delegate":
                step = (self.cast.district.get("dispatcher"), Action.delegate, ActionInput())
            else:
                targets = lifecycle.dispatch_targets(s, case)
                if targets:
                    step = (
                        coordinator,
                        Action.dispatch,
                        ActionInput(unit=rng.choice(targets).code),
                    )
        elif case.state == State.dispatched and case.current_unit_id:
            handler = self.cast.unit.get(case.current_unit_id)
            if rng.random() < 0.06:
                step = (handler, Action.return_, ActionInput(note="非本单位职责，请重新派遣"))
            else:
                step = (handler, Action.accept, ActionInput())
        elif case.state == State.handling and case.current_unit_id:
            step = (
                self.cast.unit.get(case.current_unit_id),
                Action.report_done,
                ActionInput(note=rng.choice(["已现场处置完毕", "已安排人员清理", "已修复"])),
            )
        elif case.state == State.handled:
            # The grid's own worker when allowed (not of the unit that did the work), else an
            # inspector from the district center.
            candidates = [self.cast.grid.get(case.region_code), self.cast.district.get("inspector")]
            verifier = next(
                (
                    p
                    for p in candidates
                    if p is not None and Action.verify_ok in lifecycle.allowed_actions(case, p)
                ),
                None,
            )
            ok = rng.random() < 0.88
            step = (
                verifier,
                Action.verify_ok if ok else Action.verify_fail,
                ActionInput(note="现场核查通过" if ok else "核查未通过，问题仍在"),
            )
        elif case.state == State.closed and case.satisfied is None and rng.random() < 0.6:
            step = (coordinator, Action.rate, ActionInput(satisfied=rng.random() < 0.9))
        if step is None:
            return False
        who, action, data = step
        if who is None:
            return False
        try:
            with s.begin_nested():
                lifecycle.act(s, case, action, who, data, at)
        except CityOpsError:
            return False
        return True

    def _coordinator(self, case: Case) -> Principal | None:
        if case.level == "district":
            return self.cast.district.get("dispatcher")
        return self.cast.town.get(case.region_code[:9])


def backfill(
    session: Session,
    *,
    days: int = 30,
    per_day: int = 30,
    seed: int = 20240712,
    now: datetime | None = None,
) -> int:
    """History: cases reported over the last ``days`` days, each moved along at a realistic
    pace; recent ones are left open so the queues have work in them."""
    sim = Simulator(session, seed)
    end = now or utcnow()
    made = 0
    for day in range(days, 0, -1):
        for _ in range(per_day):
            at = end - timedelta(days=day) + timedelta(minutes=sim.rng.uniform(0, 24 * 60))
            case = sim.new_case(at)
            if case is None:
                continue
            made += 1
            moment = at
            # Older cases travel further round the loop.
            for _ in range(sim.rng.randint(0, min(9, 2 + day))):
                moment += timedelta(hours=sim.rng.expovariate(1 / 2.5))
                if moment >= end or not sim.advance(case, moment):
                    break
    session.flush()
    return made


def tick(session: Session, sim: Simulator, now: datetime) -> None:
    """While the demo runs: a new case now and then, and a few open cases move on."""
    if sim.rng.random() < 0.7:
        sim.new_case(now)
    open_cases = session.scalars(
        select(Case)
        .where(Case.state.in_(["reported", "registered", "dispatched", "handling", "handled"]))
        .order_by(Case.updated_at)
        .limit(5)
    ).all()
    for case in open_cases:
        sim.advance(case, now)


def loop(factory: sessionmaker[Session], interval_s: float, stop: threading.Event) -> None:
    """The demo's live stream (a thread inside ``cityops demo``)."""
    import logging

    from cityops.auth import audit
    from cityops.db import transaction

    log = logging.getLogger("cityops.simulator")
    sim: Simulator | None = None
    while not stop.wait(interval_s):
        try:
            with transaction(factory) as session:
                audit.set_actor(session, audit.Actor("system", "simulator", "演示模拟 / demo"))
                sim = sim or Simulator(session)
                sim.session = session
                tick(session, sim, utcnow())
        except Exception:  # the demo keeps running; the next tick tries again
            log.exception("simulator tick failed")
