"""The closed loop as a table of actions: which states each starts from, which permission it
needs, and who — by level, by assignment or by report — may take it. Every action writes the
timeline; an action not allowed now is a 409 listing the actions that are."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from cityops.auth.permissions import Permission as P
from cityops.auth.principal import Principal
from cityops.catalog import service as catalog
from cityops.catalog.models import Category
from cityops.cockpit import rollup
from cityops.errors import Conflict, Forbidden, InvalidInput, NotFound
from cityops.events import clocks
from cityops.events.models import (
    OPEN_STATES,
    Assignment,
    Case,
    CaseEvent,
    Extension,
    Follower,
    Level,
    State,
)
from cityops.live import service as live
from cityops.org.models import Unit, UnitKind

S = State
LEVEL_CODE_LENGTH = {Level.district: 6, Level.town: 9, Level.village: 12}
UP = {Level.village: Level.town, Level.town: Level.district}
DOWN = {Level.district: Level.town, Level.town: Level.village}
ACCEPT_WITHIN = timedelta(hours=2)  # 及时签收: accepted within two hours of dispatch
PROBLEM_REWORKS = 3
PROBLEM_UNITS = 3
FEEDBACK_DAYS = 7
MAX_EXTENSION_H = 720.0
# Called when a case closes (other domains follow their cases: alarms clear latched alarms).
ON_CLOSE: list[Callable[[Session, Case, Principal, datetime], None]] = []


class Action(StrEnum):
    register = "register"  # 立案
    reject = "reject"  # 不予立案
    merge = "merge"  # 合并
    dispatch = "dispatch"  # 派遣
    delegate = "delegate"  # 下派 (to the level below)
    self_handle = "self_handle"  # 自处理
    accept = "accept"  # 签收
    return_ = "return"  # 回退
    report_done = "report_done"  # 处置反馈
    verify_ok = "verify_ok"  # 核查通过，结案
    verify_fail = "verify_fail"  # 核查不通过，返工
    escalate = "escalate"  # 上报 / 提级
    park = "park"  # 挂账
    unpark = "unpark"  # 解除挂账
    void = "void"  # 作废
    request_extension = "request_extension"  # 申请延期
    decide_extension = "decide_extension"  # 延期审批
    assist = "assist"  # 增派协办单位
    rate = "rate"  # 群众评价


@dataclass(frozen=True)
class Rule:
    states: frozenset[State]
    permissions: tuple[P, ...]  # any of
    who: str  # level | lead | verifier | supervisor | reporter
    levels: frozenset[Level] = frozenset(Level)  # case levels the action applies at


_OPEN = frozenset(OPEN_STATES)
# The lead unit's handlers — or its dispatchers, when a center handles a case itself.
LEAD = (P.cases_handle, P.cases_dispatch)
RULES: dict[Action, Rule] = {
    Action.register: Rule(frozenset({S.reported}), (P.cases_register,), "level"),
    Action.reject: Rule(frozenset({S.reported}), (P.cases_register,), "level"),
    Action.merge: Rule(frozenset({S.reported, S.registered}), (P.cases_register,), "level"),
    Action.dispatch: Rule(frozenset({S.registered}), (P.cases_dispatch,), "level"),
    Action.delegate: Rule(
        frozenset({S.registered}),
        (P.cases_dispatch,),
        "level",
        frozenset({Level.district, Level.town}),
    ),
    Action.self_handle: Rule(
        frozenset({S.registered}),
        (P.cases_dispatch, P.cases_handle),
        "level",
        frozenset({Level.town, Level.village}),
    ),
    Action.accept: Rule(frozenset({S.dispatched}), LEAD, "lead"),
    Action.return_: Rule(frozenset({S.dispatched, S.handling}), LEAD, "lead"),
    Action.report_done: Rule(frozenset({S.handling}), LEAD, "lead"),
    Action.verify_ok: Rule(frozenset({S.handled}), (P.cases_verify,), "verifier"),
    Action.verify_fail: Rule(frozenset({S.handled}), (P.cases_verify,), "verifier"),
    Action.escalate: Rule(
        frozenset({S.reported, S.registered, S.dispatched, S.handling}),
        (P.cases_dispatch, P.cases_handle),
        "level",
        frozenset({Level.town, Level.village}),
    ),
    Action.park: Rule(_OPEN, (P.cases_supervise,), "supervisor"),
    Action.unpark: Rule(frozenset({S.parked}), (P.cases_supervise,), "supervisor"),
    Action.void: Rule(_OPEN | {S.parked}, (P.cases_supervise,), "supervisor"),
    Action.request_extension: Rule(frozenset({S.dispatched, S.handling}), LEAD, "lead"),
    # Decided at the case's level or above (a village has no dispatcher; its town decides).
    Action.decide_extension: Rule(
        frozenset({S.dispatched, S.handling}), (P.cases_dispatch,), "supervisor"
    ),
    Action.assist: Rule(frozenset({S.dispatched, S.handling}), (P.cases_dispatch,), "supervisor"),
    Action.rate: Rule(frozenset({S.closed}), (P.cases_report, P.cases_register), "reporter"),
}


@dataclass
class ActionInput:
    note: str = ""
    category: str | None = None
    urgency: str | None = None
    unit: str | None = None
    assist_units: Sequence[str] = ()
    master: str | None = None
    hours: float | None = None
    extension_id: int | None = None
    approve: bool | None = None
    satisfied: bool | None = None
    evidence: Sequence[int] = ()


# --- who may act -----------------------------------------------------------------------------


def _level_of(principal: Principal) -> Level | None:
    return {6: Level.district, 9: Level.town, 12: Level.village}.get(len(principal.region_code))


def _at_level(principal: Principal, case: Case) -> bool:
    return _level_of(principal) == case.level and principal.sees(case.region_code)


def _may(principal: Principal, case: Case, rule: Rule) -> bool:
    if case.level not in rule.levels or not any(principal.can(p) for p in rule.permissions):
        return False
    if principal.kind not in ("person", "system"):
        return False
    if (
        rule.who == "level"
        and P.cases_dispatch in rule.permissions
        and not principal.can(P.cases_dispatch)
        and case.level != Level.village
    ):
        return False  # handlers take level actions (self-handle, escalate) only in a village
    match rule.who:
        case "level":
            return _at_level(principal, case)
        case "lead":
            return principal.unit_id is not None and principal.unit_id == case.current_unit_id
        case "verifier":
            # Not the unit that did the work: a fix is checked by someone else.
            return principal.sees(case.region_code) and (
                principal.unit_id is None or principal.unit_id != case.current_unit_id
            )
        case "supervisor":
            mine = _level_of(principal)
            order = [Level.village, Level.town, Level.district]
            return (
                mine is not None
                and principal.sees(case.region_code)
                and order.index(mine) >= order.index(Level(case.level))
            )
        case "reporter":
            own = principal.person_id is not None and principal.person_id == case.reporter_person_id
            return own or (principal.can(P.cases_register) and principal.sees(case.region_code))
    return False


def allowed_actions(case: Case, principal: Principal) -> list[Action]:
    """What the case's state and the person's role allow (see ``offered`` for what to show)."""
    return [
        a for a, rule in RULES.items() if case.state in rule.states and _may(principal, case, rule)
    ]


def offered(session: Session, case: Case, principal: Principal) -> list[Action]:
    """The actions to offer now: ``allowed_actions`` less deciding an extension when no
    request is waiting (there would be nothing to decide)."""
    allowed = allowed_actions(case, principal)
    if Action.decide_extension in allowed and not pending_extensions(session, case):
        allowed.remove(Action.decide_extension)
    return allowed


def pending_extensions(session: Session, case: Case) -> list[Extension]:
    return list(
        session.scalars(
            select(Extension).where(Extension.case_id == case.id, Extension.state == "pending")
        )
    )


# --- doing it ---------------------------------------------------------------------------------


@dataclass
class Context:
    session: Session
    case: Case
    principal: Principal
    data: ActionInput
    now: datetime
    unit_id: int | None = None  # the unit the action concerns (dispatched to, returned by …)
    positive: bool | None = None  # see CaseEvent.positive
    extra: dict[str, Any] = field(default_factory=dict)
    followups: list[Callable[[Context], tuple[str, str, dict[str, Any]]]] = field(
        default_factory=list
    )
    written: list[CaseEvent] = field(default_factory=list)

    def after(self, consequence: Callable[[Context], tuple[str, str, dict[str, Any]]]) -> None:
        """A consequence applied once the action itself is on the timeline (a problem case
        taken over …); it returns its event's action, note and data."""
        self.followups.append(consequence)

    def write_event(
        self,
        action: str,
        from_state: str | None,
        note: str,
        data: dict[str, Any],
        case_id: int | None = None,
    ) -> CaseEvent:
        own = case_id is None
        event = CaseEvent(
            case_id=case_id or self.case.id,
            at=self.now,
            action=action,
            actor_kind=self.principal.kind,
            actor_id=str(self.principal.id),
            actor_name=self.principal.name,
            actor_unit_id=self.principal.unit_id,
            unit_id=self.unit_id if own else None,
            from_state=from_state,
            to_state=self.case.state if own else from_state,
            note=note,
            data=data,
            positive=self.positive if own else None,
        )
        self.session.add(event)
        case = self.case if own else self.session.get(Case, event.case_id)
        if case is not None:
            publish(self.session, case, action, self.now)
            rollup.event_written(self.session, case, action, self.now, event.positive)
        if own:
            self.written.append(event)
        return event


def publish(session: Session, case: Case, action: str, now: datetime) -> None:
    """Every timeline event (and every new case) on the live feed, for screens to follow."""
    category = session.get(Category, case.category_id) if case.category_id else None
    live.publish(
        session,
        live.CASES,
        action,
        case.code or case.id,
        at=now,
        region_code=case.region_code,
        payload={
            "state": case.state,
            "level": case.level,
            "category": category.code if category else None,
            "urgency": case.urgency,
            "deadline": _iso(case.deadline_at),
            "lat": case.lat,
            "lon": case.lon,
            "source": case.source,
            "overdue": case.overdue,
            "problem": case.is_problem,
        },
    )


def act(
    session: Session,
    case: Case,
    action: Action,
    principal: Principal,
    data: ActionInput,
    now: datetime,
) -> Case:
    rule = RULES[action]
    if case.state not in rule.states or case.level not in rule.levels:
        raise Conflict(
            f"案件（{case.level}，{case.state}）不能执行 {action.value} / "
            f"not allowed for a {case.level} case in state {case.state}",
            allowed_actions=[a.value for a in offered(session, case, principal)],
        )
    if not _may(principal, case, rule):
        raise Forbidden(
            f"您不能对该案件执行 {action.value} / you may not {action.value} this case",
            allowed_actions=[a.value for a in offered(session, case, principal)],
        )
    if len(data.note) > 2000:
        raise InvalidInput("说明过长（最多 2000 字）/ note too long", field="note")
    ctx = Context(session, case, principal, data, now)
    before, category = case.state, case.category_id
    case.updated_at = now  # every action changes the row, so the version check covers it
    HANDLERS[action](ctx)
    rollup.recategorized(session, case, category)
    if data.evidence:
        from cityops.events import attachments

        attachments.link(session, case, data.evidence, principal, field="evidence")
    evidence = {"evidence": list(data.evidence)} if data.evidence else {}
    ctx.write_event(action.value, before, data.note.strip(), ctx.extra | evidence)
    if case.state == S.closed.value and before != S.closed.value:
        for hook in ON_CLOSE:
            hook(session, case, principal, now)
    for consequence in ctx.followups:
        ctx.unit_id, ctx.positive, state_before = None, None, case.state
        name, note, extra = consequence(ctx)
        ctx.write_event(name, state_before, note, extra)
    _announce(ctx)
    return case


def _announce(ctx: Context) -> None:
    """Hand every event written to the outbox, which decides who is told."""
    from cityops.notify import service as notify

    ctx.session.flush()
    for event in ctx.written:
        notify.case_event(ctx.session, ctx.case, event)


def _require_note(ctx: Context, what: str) -> str:
    note = ctx.data.note.strip()
    if not note:
        raise InvalidInput(f"请填写{what} / a note ({what}) is required", field="note")
    return note


def _category(ctx: Context) -> Category:
    if ctx.data.category:
        category = catalog.leaf(ctx.session, ctx.data.category)
        ctx.case.category_id = category.id
        return category
    if ctx.case.category_id is None:
        raise InvalidInput("立案须选择案件类别 / choose a category", field="category")
    current = ctx.session.get(Category, ctx.case.category_id)
    assert current is not None
    return current


def _unit(ctx: Context, code: str | None, field: str = "unit") -> Unit:
    if not code:
        raise InvalidInput("请选择单位 / choose a unit", field=field)
    unit = ctx.session.scalar(select(Unit).where(Unit.code == code, Unit.active.is_(True)))
    if unit is None:
        raise InvalidInput(f"单位 {code} 不存在 / unknown unit", field=field)
    return unit


def dispatch_targets(session: Session, case: Case) -> list[Unit]:
    """Units the case's current level may dispatch to."""
    return targets_at(session, Level(case.level), case.region_code)


def targets_at(session: Session, level: Level, region_code: str) -> list[Unit]:
    """Units a level may dispatch to: departments (and their sections) from the district; the
    town's own sections and village stations from a town."""
    if level == Level.district:
        depts = select(Unit.id).where(Unit.kind == UnitKind.department.value)
        query = select(Unit).where(
            (Unit.kind == UnitKind.department.value)
            | ((Unit.kind == UnitKind.section.value) & Unit.parent_id.in_(depts))
        )
    elif level == Level.town:
        center = select(Unit.id).where(
            Unit.kind == UnitKind.town_center.value, Unit.code == f"TC-{region_code[:9]}"
        )
        query = select(Unit).where(
            ((Unit.kind == UnitKind.section.value) & Unit.parent_id.in_(center))
            | (
                (Unit.kind == UnitKind.village_station.value)
                & Unit.code.startswith(f"VS-{region_code[:9]}")
            )
        )
    else:
        return []
    return list(session.scalars(query.where(Unit.active.is_(True)).order_by(Unit.code)))


def _assign_lead(ctx: Context, unit: Unit) -> None:
    _cancel_extensions(ctx)
    ctx.session.execute(
        update(Assignment)
        .where(
            Assignment.case_id == ctx.case.id,
            Assignment.role == "lead",
            Assignment.active.is_(True),
        )
        .values(active=False)
    )
    ctx.session.add(
        Assignment(case_id=ctx.case.id, unit_id=unit.id, role="lead", assigned_at=ctx.now)
    )
    ctx.case.current_unit_id = unit.id
    ctx.session.flush()
    ctx.case.units_passed = (
        ctx.session.scalar(
            select(func.count(func.distinct(Assignment.unit_id))).where(
                Assignment.case_id == ctx.case.id, Assignment.role == "lead"
            )
        )
        or 0
    )


def _cancel_extensions(ctx: Context) -> None:
    """A pending request belongs to the assignment and clock it was made on."""
    ctx.session.execute(
        update(Extension)
        .where(Extension.case_id == ctx.case.id, Extension.state == "pending")
        .values(state="cancelled", decided_at=ctx.now, decided_by="系统 / system")
    )


def _leave_units(ctx: Context) -> None:
    _cancel_extensions(ctx)
    ctx.session.execute(
        update(Assignment)
        .where(Assignment.case_id == ctx.case.id, Assignment.active.is_(True))
        .values(active=False)
    )
    ctx.case.current_unit_id = None


def _problem_check(ctx: Context) -> None:
    """12345 practice: redone three times, or passed through three units, and the district
    takes the case over as a problem case."""
    case = ctx.case
    if case.is_problem or (
        case.rework_count < PROBLEM_REWORKS and case.units_passed < PROBLEM_UNITS
    ):
        return
    case.is_problem = True

    def take_over(c: Context) -> tuple[str, str, dict[str, Any]]:
        if c.case.level != Level.district:
            _leave_units(c)
            clocks.stop(c.case)
            c.case.deadline_at = None
            c.case.level = Level.district.value
            c.case.state = S.registered.value
        note = "问题案件，提级至区 / problem case, taken over by the district"
        return "problem", note, {"reworks": c.case.rework_count, "units": c.case.units_passed}

    ctx.after(take_over)


def _register(ctx: Context) -> None:
    category = _category(ctx)
    if ctx.data.urgency:
        ctx.case.urgency = _urgency(ctx.data.urgency)
    ctx.case.state = S.registered.value
    ctx.extra = {"category": category.code, "urgency": ctx.case.urgency}


def _urgency(value: str) -> str:
    if value not in ("urgent", "normal"):
        raise InvalidInput(
            "紧急程度须为 urgent 或 normal / urgency: urgent or normal", field="urgency"
        )
    return value


def _reject(ctx: Context) -> None:
    _require_note(ctx, "不予立案的理由")
    ctx.case.state = S.rejected.value


def _merge(ctx: Context) -> None:
    if not ctx.data.master:
        raise InvalidInput("请指定主案件 / the master case is required", field="master")
    master = ctx.session.scalar(select(Case).where(Case.code == ctx.data.master))
    if master is None or master.id == ctx.case.id:
        raise InvalidInput("主案件无效 / unknown master case", field="master")
    if master.state not in OPEN_STATES or master.master_id is not None:
        raise Conflict("主案件已办结或已合并 / the master case is not open", field="master")
    ctx.case.state = S.merged.value
    ctx.case.master_id = master.id
    clocks.stop(ctx.case)
    # Duplicates merged into this case earlier now point at the new master too, so no master
    # is itself merged; the new master's timeline names each of them.
    earlier = list(ctx.session.scalars(select(Case.code).where(Case.master_id == ctx.case.id)))
    ctx.session.execute(
        update(Case).where(Case.master_id == ctx.case.id).values(master_id=master.id)
    )
    for code in earlier:
        ctx.write_event(
            "merged_in",
            master.state,
            "",
            {"duplicate": code, "via": ctx.case.code},
            case_id=master.id,
        )
    present = {
        (f.person_id, f.phone)
        for f in ctx.session.scalars(select(Follower).where(Follower.case_id == master.id))
    }
    for f in ctx.session.scalars(select(Follower).where(Follower.case_id == ctx.case.id)):
        if (f.person_id, f.phone) not in present:
            present.add((f.person_id, f.phone))
            ctx.session.add(
                Follower(case_id=master.id, person_id=f.person_id, name=f.name, phone=f.phone)
            )
    ctx.extra = {"master": master.code}
    ctx.write_event("merged_in", master.state, "", {"duplicate": ctx.case.code}, case_id=master.id)


def _dispatch(ctx: Context) -> None:
    category = _category(ctx)
    unit = _unit(ctx, ctx.data.unit)
    targets = {u.id for u in dispatch_targets(ctx.session, ctx.case)}
    if unit.id not in targets:
        raise InvalidInput(
            f"{unit.name} 不在本级可派遣范围 / cannot dispatch to that unit from this level",
            field="unit",
        )
    _assign_lead(ctx, unit)
    for code in ctx.data.assist_units:
        helper = _unit(ctx, code, "assist_units")
        ctx.session.add(
            Assignment(case_id=ctx.case.id, unit_id=helper.id, role="assist", assigned_at=ctx.now)
        )
    ctx.case.state = S.dispatched.value
    clocks.start(ctx.case, category, ctx.now)
    ctx.unit_id = unit.id
    ctx.extra = {"deadline": _iso(ctx.case.deadline_at), "assist": list(ctx.data.assist_units)}
    _problem_check(ctx)


def _delegate(ctx: Context) -> None:
    below = DOWN.get(Level(ctx.case.level))
    if below is None or len(ctx.case.region_code) < LEVEL_CODE_LENGTH[below]:
        raise Conflict("无法继续下派 / there is no level below to send this case to")
    ctx.case.level = below.value
    ctx.extra = {"level": below.value}


def _self_handle(ctx: Context) -> None:
    if ctx.case.level == Level.district:
        raise Conflict("区级案件应派遣处置 / district cases are dispatched, not self-handled")
    category = _category(ctx)
    unit = ctx.session.get(Unit, ctx.principal.unit_id) if ctx.principal.unit_id else None
    if unit is None:
        raise InvalidInput("您没有所属单位 / you have no unit", field="unit")
    _assign_lead(ctx, unit)
    ctx.case.state = S.handling.value
    clocks.start(ctx.case, category, ctx.now)
    ctx.unit_id = unit.id
    ctx.extra = {"deadline": _iso(ctx.case.deadline_at)}
    _problem_check(ctx)


def _accept(ctx: Context) -> None:
    ctx.unit_id = ctx.case.current_unit_id
    started = ctx.case.clock_started_at
    ctx.positive = started is not None and ctx.now - started <= ACCEPT_WITHIN
    ctx.case.state = S.handling.value
    ctx.session.execute(
        update(Assignment)
        .where(
            Assignment.case_id == ctx.case.id,
            Assignment.role == "lead",
            Assignment.active.is_(True),
        )
        .values(accepted_at=ctx.now)
    )


def _return(ctx: Context) -> None:
    _require_note(ctx, "回退理由")
    ctx.unit_id = ctx.case.current_unit_id  # the unit that returned it
    _leave_units(ctx)
    clocks.stop(ctx.case)
    ctx.case.deadline_at = None
    ctx.case.state = S.registered.value


def _report_done(ctx: Context) -> None:
    _require_note(ctx, "处置情况")
    _cancel_extensions(ctx)
    ctx.unit_id = ctx.case.current_unit_id
    ctx.positive = _on_time(ctx)
    clocks.stop(ctx.case)
    ctx.case.state = S.handled.value


def _verify_ok(ctx: Context) -> None:
    ctx.unit_id = ctx.case.current_unit_id
    ctx.positive = not ctx.case.overdue  # handled within the time limit
    clocks.stop(ctx.case)
    ctx.case.state = S.closed.value
    ctx.case.closed_at = ctx.now


def _rework(ctx: Context) -> None:
    """Back to the unit that handled it, on a fresh clock; counted."""
    category = _category(ctx)
    ctx.unit_id = ctx.case.current_unit_id
    ctx.case.rework_count += 1
    ctx.case.state = S.dispatched.value
    ctx.case.closed_at = None
    clocks.start(ctx.case, category, ctx.now)
    ctx.extra |= {"rework": ctx.case.rework_count, "deadline": _iso(ctx.case.deadline_at)}
    _problem_check(ctx)


def _verify_fail(ctx: Context) -> None:
    _require_note(ctx, "核查不通过的原因")
    _rework(ctx)


def _escalate(ctx: Context) -> None:
    up = UP.get(Level(ctx.case.level))
    if up is None:
        raise Conflict("区级案件无法再上报 / a district case cannot be escalated further")
    _require_note(ctx, "上报理由")
    _leave_units(ctx)
    clocks.stop(ctx.case)
    ctx.case.deadline_at = None
    ctx.case.level = up.value
    ctx.case.state = S.registered.value if ctx.case.category_id else S.reported.value
    ctx.extra = {"level": up.value}


def _park(ctx: Context) -> None:
    _require_note(ctx, "挂账理由")
    ctx.case.resume_state = ctx.case.state
    ctx.case.state = S.parked.value
    clocks.pause(ctx.case, ctx.now)


def _unpark(ctx: Context) -> None:
    ctx.case.state = ctx.case.resume_state or S.registered.value
    ctx.case.resume_state = None
    if ctx.case.state in (S.dispatched, S.handling):
        clocks.resume(ctx.case, ctx.now)


def _void(ctx: Context) -> None:
    _require_note(ctx, "作废理由")
    _cancel_extensions(ctx)
    clocks.stop(ctx.case)
    ctx.case.state = S.voided.value


def _request_extension(ctx: Context) -> None:
    hours = ctx.data.hours
    if hours is None or not 0 < hours <= MAX_EXTENSION_H:
        raise InvalidInput(
            f"延期时长须为 0–{MAX_EXTENSION_H:g} 小时 / hours: 0–{MAX_EXTENSION_H:g}", field="hours"
        )
    reason = _require_note(ctx, "延期理由")
    if ctx.case.deadline_at is None or ctx.now >= ctx.case.deadline_at:
        raise Conflict("延期须在期限届满前申请 / extensions must be requested before the deadline")
    pending = ctx.session.scalar(
        select(Extension.id).where(Extension.case_id == ctx.case.id, Extension.state == "pending")
    )
    if pending:
        raise Conflict("已有待审批的延期申请 / an extension request is already pending")
    ext = Extension(
        case_id=ctx.case.id,
        hours=hours,
        reason=reason,
        requested_by=ctx.principal.name,
        requested_at=ctx.now,
    )
    ctx.session.add(ext)
    ctx.session.flush()
    ctx.unit_id = ctx.case.current_unit_id
    ctx.extra = {"extension": ext.id, "hours": hours}


def _decide_extension(ctx: Context) -> None:
    ext = ctx.session.get(Extension, ctx.data.extension_id) if ctx.data.extension_id else None
    if ext is None or ext.case_id != ctx.case.id:
        raise InvalidInput("延期申请不存在 / unknown extension request", field="extension_id")
    if ext.state != "pending":
        raise Conflict("该延期申请已审批 / already decided")
    if ctx.data.approve is None:
        raise InvalidInput("请选择批准或驳回 / approve: true or false", field="approve")
    ext.state = "approved" if ctx.data.approve else "rejected"
    ext.decided_by = ctx.principal.name
    ext.decided_at = ctx.now
    before_deadline = ctx.case.deadline_at
    if ctx.data.approve:
        clocks.extend(ctx.case, ext.hours)
    ctx.unit_id = ctx.case.current_unit_id
    ctx.extra = {
        "extension": ext.id,
        "approved": ctx.data.approve,
        "deadline_before": _iso(before_deadline),
        "deadline_after": _iso(ctx.case.deadline_at),
    }


def _assist(ctx: Context) -> None:
    if not ctx.data.assist_units:
        raise InvalidInput("请选择协办单位 / choose assisting units", field="assist_units")
    units = [_unit(ctx, code, "assist_units") for code in ctx.data.assist_units]
    for unit in units:
        ctx.session.add(
            Assignment(case_id=ctx.case.id, unit_id=unit.id, role="assist", assigned_at=ctx.now)
        )
    ctx.extra = {"assist": [u.code for u in units]}


def _rate(ctx: Context) -> None:
    if ctx.data.satisfied is None:
        raise InvalidInput("请选择满意或不满意 / satisfied: true or false", field="satisfied")
    closed = ctx.case.closed_at
    if closed is None or ctx.now - closed > timedelta(days=FEEDBACK_DAYS):
        raise Conflict(
            f"结案 {FEEDBACK_DAYS} 天后不再评价 / feedback closes {FEEDBACK_DAYS} days after close"
        )
    if ctx.case.satisfied is not None:
        raise Conflict("该案件已评价 / already rated")
    ctx.case.satisfied = ctx.data.satisfied
    ctx.positive = ctx.data.satisfied
    ctx.extra = {"satisfied": ctx.data.satisfied}
    ctx.unit_id = ctx.case.current_unit_id
    if not ctx.data.satisfied:
        _rework(ctx)  # reopened: back to the unit as rework, to be rated again when closed
        ctx.case.satisfied = None


HANDLERS: dict[Action, Callable[[Context], None]] = {
    Action.register: _register,
    Action.reject: _reject,
    Action.merge: _merge,
    Action.dispatch: _dispatch,
    Action.delegate: _delegate,
    Action.self_handle: _self_handle,
    Action.accept: _accept,
    Action.return_: _return,
    Action.report_done: _report_done,
    Action.verify_ok: _verify_ok,
    Action.verify_fail: _verify_fail,
    Action.escalate: _escalate,
    Action.park: _park,
    Action.unpark: _unpark,
    Action.void: _void,
    Action.request_extension: _request_extension,
    Action.decide_extension: _decide_extension,
    Action.assist: _assist,
    Action.rate: _rate,
}


def _on_time(ctx: Context) -> bool:
    deadline = ctx.case.deadline_at
    on_time = deadline is None or ctx.now <= deadline
    if not on_time:
        ctx.case.overdue = True
    return on_time


# --- the clock ladder (run by the worker) -----------------------------------------------------

SYSTEM = Principal(
    kind="system",
    id=0,
    name="时限监控 / clock",
    roles=frozenset(),
    permissions=frozenset(),
    region_code="",
)
LADDER_STEPS = ("warn", "urge", "supervise", "auto_escalate")


def ladder_step(session: Session, case: Case, step: int, now: datetime) -> str:
    """Take ladder step ``step`` (0: warn, 1: urge — overdue, 2: supervise — visible one level
    up, 3: escalate one level; a district case becomes a problem case). Returns its name."""
    name = LADDER_STEPS[step]
    ctx = Context(session, case, SYSTEM, ActionInput(), now)
    ctx.unit_id = case.current_unit_id
    before = case.state
    newly_problem = False
    if name == "urge":
        case.overdue = True
    elif name == "auto_escalate":
        up = UP.get(Level(case.level))
        if up is None:
            newly_problem = not case.is_problem
            case.is_problem = True
        else:
            _leave_units(ctx)
            clocks.stop(case)
            case.deadline_at = None
            case.level = up.value
            case.state = S.registered.value
            ctx.extra = {"level": up.value}
    ctx.write_event(name, before, LADDER_NOTES[name], ctx.extra | {"step": step + 1})
    if newly_problem:
        ctx.unit_id = None
        note = "超期一倍的区级案件，列为问题案件 / overdue twice over: a problem case"
        ctx.write_event(
            "problem", case.state, note, {"reworks": case.rework_count, "units": case.units_passed}
        )
    _announce(ctx)
    return name


LADDER_NOTES = {
    "warn": "即将到期（已用 80% 时限）/ 80% of the time limit used",
    "urge": "已超期，催办 / overdue: urged",
    "supervise": "超期 50%，上级督办 / 150% of the limit: supervised one level up",
    "auto_escalate": "超期一倍，自动提级 / 200% of the limit: escalated",
}


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment else None


def get_case(session: Session, code: str) -> Case:
    case = session.scalar(select(Case).where(Case.code == code))
    if case is None:
        raise NotFound(f"案件 {code} 不存在 / case {code} not found", field="code")
    return case
