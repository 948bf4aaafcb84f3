"""The cockpit's figures, each one SQL aggregate scoped to a region-code prefix.

Definitions are the event center's: "closed" is a verification that closed a case (核查结案,
``verify_ok``), the closure and on-time rates are the evaluation's (综合评价) over the last 30
days, "open" is reported … handled, and an open case is overdue when its clock flagged it or its
deadline has passed while a unit still holds it. Days are days of the display time zone
(Asia/Shanghai by default).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import (
    ColumnElement,
    Select,
    and_,
    case,
    desc,
    exists,
    false,
    func,
    literal,
    or_,
    select,
    text,
)
from sqlalchemy.orm import Session

from cityops.alarms.models import Alarm, Severity
from cityops.auth.permissions import Permission
from cityops.auth.principal import Principal
from cityops.catalog.models import Category
from cityops.cockpit import rollup
from cityops.cockpit import schemas as s
from cityops.cockpit.models import DailyClosures, DailyIntake
from cityops.db import UTCDateTime
from cityops.errors import NotFound
from cityops.events import evaluation
from cityops.events import queries as case_queries
from cityops.events.models import OPEN_STATES, Case, CaseEvent, State
from cityops.geo import service as geo
from cityops.geo.codes import within
from cityops.geo.models import Level, Region
from cityops.telemetry.models import Device, DeviceType, Latest
from cityops.warning.models import AT_HOME, Evacuation, EvacuationEntry, RiskPoint, Warning
from cityops.warning.models import OPEN_STATES as OPEN_WARNINGS

# The cockpit shows all of these; whoever lacks one of them is not shown the cockpit.
READ_PERMISSIONS = (
    Permission.cases_read,
    Permission.alarms_read,
    Permission.devices_read,
    Permission.warnings_read,
    Permission.people_read,
)
REGION_PATTERN = r"^\d{6}(\d{3}){0,3}$"
PERIOD_DAYS = 30
TOP_CATEGORIES = 10
MAX_WARNINGS = 20
OPEN = sorted(s.value for s in OPEN_STATES)
LEVEL_ORDER = {"red": 4, "orange": 3, "yellow": 2, "blue": 1}
ALARM_PLACE: Any = Alarm.region_code  # nullable; an alarm without a place is in no region


@dataclass(frozen=True)
class Scope:
    """Where the cockpit looks, and which cases there the caller may count."""

    region: Region
    # The event center's visibility rule when it is narrower than region scope (a unit handler
    # sees the cases their unit worked on); None when the region-code range says it all.
    case_rule: ColumnElement[bool] | None = None

    @property
    def code(self) -> str:
        return self.region.code

    def cases(self) -> list[ColumnElement[bool]]:
        conditions = [within(Case.region_code, self.code)]
        if self.case_rule is not None:
            conditions.append(self.case_rule)
        return conditions

    @property
    def district_wide(self) -> bool:
        """Every case there is counted: events need not be joined to their cases (as in the
        evaluation, a district-wide period reads the events' covering index alone)."""
        return len(self.code) <= evaluation.DISTRICT_CODE_LENGTH and self.case_rule is None


def scope_for(session: Session, principal: Principal, code: str | None, default: str) -> Scope:
    """The region asked for (default: the caller's own), if it exists inside the caller's scope;
    a region outside it is "not found", like one that does not exist."""
    plan_each_query(session)
    code = code or principal.region_code or default
    region = session.scalar(select(Region).where(Region.code == code))
    if region is None or not principal.sees(region.code):
        raise NotFound(
            f"区域 {code} 不存在或不在您的辖区 / region {code} not found in your area",
            field="region",
        )
    rule = case_queries.visible(principal)
    plain = principal.scope(Case.region_code)
    return Scope(region, None if rule.compare(plain) else rule)


def plan_each_query(session: Session) -> None:
    """PostgreSQL: plan this transaction's statements for their own parameters. psycopg prepares
    a statement after five executions, and PostgreSQL may then switch to a generic plan that
    cannot tell a region-code range covering the district from one covering a grid: at 1M cases
    that plan counted a grid's 30 days in 6 s instead of 20 ms."""
    if session.get_bind().dialect.name == "postgresql":
        session.execute(text("SET LOCAL plan_cache_mode = force_custom_plan"))


def region_info(region: Region) -> s.RegionInfo:
    child = Level(region.level).child
    return s.RegionInfo(
        code=region.code,
        name=region.name,
        level=region.level,
        child_level=child.value if child else None,
        center=(region.center_lon, region.center_lat),
        bbox=(region.min_lon, region.min_lat, region.max_lon, region.max_lat),
    )


def breadcrumb(session: Session, principal: Principal, region: Region) -> list[s.Crumb]:
    """District first, down to the region; levels above the caller's scope are shown but cannot
    be opened."""
    return [
        s.Crumb(code=r.code, name=r.name, level=r.level, in_scope=principal.sees(r.code))
        for r in [*geo.ancestors(session, region), region]
    ]


# --- time -------------------------------------------------------------------------------------


def day_bounds(now: datetime, zone: ZoneInfo, days: int) -> list[datetime]:
    """``days + 1`` local midnights in UTC: the first of ``days`` days ending with today, …,
    tomorrow's."""
    today = now.astimezone(zone).date()
    first = today - timedelta(days=days - 1)
    return [
        datetime.combine(first + timedelta(days=i), time(0), tzinfo=zone).astimezone(UTC)
        for i in range(days + 1)
    ]


def _day(column: Any, bounds: Sequence[datetime]) -> ColumnElement[int]:
    """Index of the local day a moment falls on (rows are already limited to the period)."""
    whens = [(column >= bound, i) for i, bound in enumerate(bounds[:-1])]
    return case(*reversed(whens), else_=-1)


def overdue_now(now: datetime) -> ColumnElement[bool]:
    """Open and late: flagged by the clock ladder (or handled late), or past the deadline while
    a unit still holds it (before the worker's next pass flags it)."""
    return or_(
        Case.overdue.is_(True),
        and_(Case.state != State.handled.value, Case.deadline_at < now),
    )


def _count(condition: ColumnElement[bool]) -> ColumnElement[int]:
    return func.coalesce(func.sum(case((condition, 1), else_=0)), 0)


# --- the summary ------------------------------------------------------------------------------


def summary(
    session: Session, principal: Principal, scope: Scope, now: datetime, zone: ZoneInfo
) -> s.Summary:
    bounds = day_bounds(now, zone, PERIOD_DAYS)
    days = [(bounds[0].astimezone(zone) + timedelta(days=i)).date() for i in range(PERIOD_DAYS)]
    if rolled_up(scope, zone):
        intake, sources = rollup_intake(session, scope, days)
        closed, rates = closures(session, scope, bounds, days)
        top = rollup_categories(session, scope, days, total=sum(intake))
    else:
        intake, sources = intake_by_day_and_source(session, scope, bounds)
        closed, rates = closures(session, scope, bounds)
        top = categories(session, scope, bounds, total=sum(intake))
    children, open_total, overdue_total = open_by_child(session, scope, now)
    return s.Summary(
        region=region_info(scope.region),
        breadcrumb=breadcrumb(session, principal, scope.region),
        generated_at=now,
        today=s.Today(
            date=days[-1],
            intake=intake[-1],
            closed=closed[-1],
            open=open_total,
            overdue=overdue_total,
        ),
        rates=rates,
        by_source=sources,
        by_category=top,
        trend=s.Trend(days=days, intake=intake, closed=closed),
        alarms=alarms(session, scope, now),
        devices=devices(session, scope, now),
        warnings=active_warnings(session, scope),
        risk_points=risk_levels(session, scope),
        children=children,
    )


def intake_by_day_and_source(
    session: Session, scope: Scope, bounds: Sequence[datetime]
) -> tuple[list[int], list[s.Count]]:
    """Cases reported per day of the period, and over the period by source (most first)."""
    day = _day(Case.created_at, bounds).label("day")
    rows = session.execute(
        select(day, Case.source, func.count())
        .where(Case.created_at >= bounds[0], Case.created_at < bounds[-1], *scope.cases())
        .group_by(day, Case.source)
    ).all()
    per_day = [0] * (len(bounds) - 1)
    per_source: dict[str, int] = {}
    for i, source, n in rows:
        if 0 <= i < len(per_day):
            per_day[i] += int(n)
        per_source[source] = per_source.get(source, 0) + int(n)
    ranked = sorted(per_source.items(), key=lambda kv: (-kv[1], kv[0]))
    return per_day, [s.Count(key=k, count=n) for k, n in ranked]


def categories(
    session: Session, scope: Scope, bounds: Sequence[datetime], *, total: int
) -> s.Categories:
    """The most frequent categories of the period's cases ("" for cases not yet classified)."""
    n = func.count().label("n")
    counted = (
        select(Case.category_id, n)
        .where(Case.created_at >= bounds[0], Case.created_at < bounds[-1], *scope.cases())
        .group_by(Case.category_id)
        .order_by(desc(n), Case.category_id)
        .limit(TOP_CATEGORIES)
        .subquery()
    )
    rows = session.execute(
        select(Category.code, Category.name, counted.c.n)
        .select_from(counted)
        .outerjoin(Category, Category.id == counted.c.category_id)
        .order_by(desc(counted.c.n), Category.code)
    ).all()
    items = [s.Count(key=code or "", name=name or "", count=int(c)) for code, name, c in rows]
    return s.Categories(items=items, other=max(0, total - sum(i.count for i in items)))


def rolled_up(scope: Scope, zone: ZoneInfo) -> bool:
    """Whether the daily roll-up answers for this scope: its days are the days shown, and the
    caller may count every case of the region (the roll-up knows regions, not units)."""
    return scope.case_rule is None and getattr(zone, "key", None) == rollup.ZONE.key


def _rolled_days(table: type[DailyIntake] | type[DailyClosures], days: Sequence[date]) -> Any:
    return and_(table.day >= days[0], table.day <= days[-1])


def rollup_intake(
    session: Session, scope: Scope, days: Sequence[date]
) -> tuple[list[int], list[s.Count]]:
    """``intake_by_day_and_source`` from the roll-up."""
    R = DailyIntake
    rows = session.execute(
        select(R.day, R.source, func.sum(R.cases))
        .where(R.region_code == scope.code, _rolled_days(R, days))
        .group_by(R.day, R.source)
    ).all()
    per_day = [0] * len(days)
    per_source: dict[str, int] = {}
    for day, source, n in rows:
        per_day[(day - days[0]).days] += int(n)
        per_source[source] = per_source.get(source, 0) + int(n)
    ranked = sorted(((k, n) for k, n in per_source.items() if n), key=lambda kv: (-kv[1], kv[0]))
    return per_day, [s.Count(key=k, count=n) for k, n in ranked]


def rollup_categories(
    session: Session, scope: Scope, days: Sequence[date], *, total: int
) -> s.Categories:
    """``categories`` from the roll-up: the same ranking, ties broken the same way (cases not
    classified as NULL, which each engine sorts where the direct count puts them)."""
    R = DailyIntake
    n = func.sum(R.cases).label("n")
    category = func.nullif(R.category_id, rollup.NOT_CLASSIFIED).label("category_id")
    counted = (
        select(category, n)
        .where(R.region_code == scope.code, _rolled_days(R, days))
        .group_by(category)
        .having(n > 0)
        .order_by(desc(n), category)
        .limit(TOP_CATEGORIES)
        .subquery()
    )
    rows = session.execute(
        select(Category.code, Category.name, counted.c.n)
        .select_from(counted)
        .outerjoin(Category, Category.id == counted.c.category_id)
        .order_by(desc(counted.c.n), Category.code)
    ).all()
    items = [s.Count(key=code or "", name=name or "", count=int(c)) for code, name, c in rows]
    return s.Categories(items=items, other=max(0, total - sum(i.count for i in items)))


# The evaluation's (综合评价) counts behind the two rates, as ``cityops.events.evaluation``
# defines them: dispatched = dispatch or self-handling; closed = verify_ok; on time = a verify_ok
# marked positive (handled within the time limit). Only these actions are read: a month of a
# busy district's timeline is millions of events, most of them other steps.
DISPATCHES = ("dispatch", "self_handle")
CLOSURE = "verify_ok"


def closures(
    session: Session,
    scope: Scope,
    bounds: Sequence[datetime],
    rolled_days: Sequence[date] | None = None,
) -> tuple[list[int], s.Rates]:
    """Closures per day of the period, and the closure and on-time closure rates over it
    (from the roll-up when its ``rolled_days`` are given)."""
    per_day = [0] * (len(bounds) - 1)
    counts = dict.fromkeys(evaluation.COUNTS, 0)
    if rolled_days is None:
        rows: Iterable[Any] = session.execute(_closures_counted(scope, bounds))
        first = 0
    else:
        rows = session.execute(_closures_rolled(scope, rolled_days))
        first = rolled_days[0].toordinal()
    for row in rows:
        day = row.day - first if rolled_days is None else row.day.toordinal() - first
        if 0 <= day < len(per_day):
            per_day[day] = int(row.closed)
        for name in ("dispatched", "closed", "closed_on_time"):
            counts[name] += int(getattr(row, name))
    return per_day, _rates(scope, bounds, per_day, counts)


def _closures_rolled(scope: Scope, days: Sequence[date]) -> Select[date, int, int, int]:
    R = DailyClosures
    return select(R.day, R.dispatched, R.closed, R.closed_on_time).where(
        R.region_code == (rollup.EVERYWHERE if scope.district_wide else scope.code),
        _rolled_days(R, days),
    )


def _closures_counted(scope: Scope, bounds: Sequence[datetime]) -> Select[int, int, int, int]:
    E = CaseEvent
    day = _day(E.at, bounds).label("day")
    closed = E.action == CLOSURE
    query = (
        select(
            day,
            _count(E.action.in_(DISPATCHES)).label("dispatched"),
            _count(closed).label("closed"),
            _count(and_(closed, E.positive.is_(True))).label("closed_on_time"),
        )
        .select_from(E)
        .where(E.at >= bounds[0], E.at < bounds[-1], E.action.in_((*DISPATCHES, CLOSURE)))
        .group_by(day)
    )
    if not scope.district_wide:
        query = query.join(Case, Case.id == E.case_id).where(*scope.cases())
    return query


def _rates(
    scope: Scope, bounds: Sequence[datetime], per_day: list[int], counts: dict[str, int]
) -> s.Rates:
    # The evaluation's own arithmetic (ratios, rounding) on these counts.
    (scored,) = evaluation.score([evaluation.Row(scope.code, scope.region.name, counts)], {})
    return s.Rates(
        days=len(per_day),
        since=bounds[0],
        until=bounds[-1],
        dispatched=counts["dispatched"],
        closed=counts["closed"],
        closed_on_time=counts["closed_on_time"],
        closure_rate=scored.rates["closure_rate"],
        on_time_closure_rate=scored.rates["on_time_closure_rate"],
    )


def open_by_child(
    session: Session, scope: Scope, now: datetime
) -> tuple[list[s.ChildCount], int, int]:
    """Open and overdue cases under each child region (the map's colours), and their totals
    (cases located only to the region itself count in the totals)."""
    child = Level(scope.region.level).child
    length = child.code_length if child else len(scope.code)
    place = func.substr(Case.region_code, 1, length).label("place")
    rows = session.execute(
        select(place, func.count(), _count(overdue_now(now)))
        .where(Case.state.in_(OPEN), *scope.cases())
        .group_by(place)
    ).all()
    children = [
        s.ChildCount(code=code, open=int(n), overdue=int(late))
        for code, n, late in sorted(rows)
        if child and len(code) == length
    ]
    return children, sum(int(r[1]) for r in rows), sum(int(r[2]) for r in rows)


def alarms(session: Session, scope: Scope, now: datetime) -> s.Alarms:
    """Open alarms by severity; shelved ones (suppressed for a while) only counted apart, as
    in the alarm list."""
    shelved = and_(Alarm.shelved_until.is_not(None), Alarm.shelved_until > now)
    rows = session.execute(
        select(
            Alarm.severity,
            _count(~shelved),
            _count(and_(~shelved, Alarm.acked.is_(False))),
            _count(shelved),
        )
        .where(Alarm.closed_at.is_(None), within(ALARM_PLACE, scope.code))
        .group_by(Alarm.severity)
    ).all()
    by = {sev: int(n) for sev, n, _u, _s in rows}
    return s.Alarms(
        critical=by.get(Severity.critical.value, 0),
        major=by.get(Severity.major.value, 0),
        minor=by.get(Severity.minor.value, 0),
        warning=by.get(Severity.warning.value, 0),
        total=sum(by.values()),
        unacked=sum(int(r[2]) for r in rows),
        shelved=sum(int(r[3]) for r in rows),
    )


def device_online(session: Session, now: datetime) -> ColumnElement[bool]:
    """A device is online when it is active and reported within its type's offline_after_s
    (the telemetry domain's rule), as one SQL condition: the few types' cut-offs inline."""
    cutoffs = {
        code: literal(now - timedelta(seconds=after), UTCDateTime())
        for code, after in session.execute(select(DeviceType.code, DeviceType.offline_after_s))
    }
    if not cutoffs:
        return false()  # no device types: no devices either
    cutoff = case(cutoffs, value=Device.type_code, else_=literal(now, UTCDateTime()))
    seen = exists().where(Latest.device_id == Device.id, Latest.received_at >= cutoff)
    return and_(Device.active.is_(True), seen)


def devices(session: Session, scope: Scope, now: datetime) -> s.Devices:
    total, online = session.execute(
        select(func.count(), _count(device_online(session, now))).where(
            within(Device.region_code, scope.code)
        )
    ).one()
    return s.Devices(total=int(total), online=int(online), offline=int(total) - int(online))


def risk_levels(session: Session, scope: Scope) -> s.RiskLevels:
    """Active risk points by the warning colour the analytics last gave them."""
    rows = session.execute(
        select(RiskPoint.level, func.count())
        .where(RiskPoint.active.is_(True), within(RiskPoint.region_code, scope.code))
        .group_by(RiskPoint.level)
    ).all()
    by = {level: int(n) for level, n in rows}
    return s.RiskLevels(
        red=by.get("red", 0),
        orange=by.get("orange", 0),
        yellow=by.get("yellow", 0),
        blue=by.get("blue", 0),
        none=by.get("none", 0),
        total=sum(by.values()),
    )


def active_warnings(session: Session, scope: Scope) -> list[s.ActiveWarning]:
    """Open warnings in the region — or whose evacuation reaches into it (a zone straddles
    grids) — most severe first, with evacuation progress in persons. A warning of the region
    counts its whole evacuation; one from next door only its households inside the region."""
    E = EvacuationEntry
    in_region = within(Warning.region_code, scope.code)
    counted = or_(in_region, within(E.grid_code, scope.code))

    def persons(condition: ColumnElement[bool]) -> ColumnElement[int]:
        return func.coalesce(func.sum(case((and_(counted, condition), E.persons), else_=0)), 0)

    reaching = (
        select(Evacuation.warning_id)
        .join(E, E.evacuation_id == Evacuation.id)
        .where(within(E.grid_code, scope.code))
    )
    rank = case(LEVEL_ORDER, value=Warning.level, else_=0)
    rows = session.execute(
        select(
            Warning,
            RiskPoint.code,
            RiskPoint.name,
            RiskPoint.hazard,
            Evacuation.state,
            _count(and_(counted, E.id.is_not(None))).label("households"),
            persons(E.status.in_(AT_HOME)).label("at_home"),
            persons(E.status == "evacuated").label("evacuated"),
            persons(E.status == "sheltered").label("sheltered"),
            persons(E.id.is_not(None)).label("total"),
        )
        .join(RiskPoint, RiskPoint.id == Warning.risk_point_id)
        .outerjoin(Evacuation, Evacuation.warning_id == Warning.id)
        .outerjoin(E, E.evacuation_id == Evacuation.id)
        .where(Warning.state.in_(OPEN_WARNINGS), or_(in_region, Warning.id.in_(reaching)))
        .group_by(Warning.id, RiskPoint.id, Evacuation.id)
        .order_by(desc(rank), Warning.proposed_at.desc())
        .limit(MAX_WARNINGS)
    ).all()
    return [
        s.ActiveWarning(
            code=w.code,
            level=w.level,
            state=w.state,
            headline=w.headline,
            region_code=w.region_code,
            risk_point=point_code,
            risk_point_name=point_name,
            hazard=hazard,
            proposed_at=w.proposed_at,
            issued_at=w.issued_at,
            evacuation=None
            if evac_state is None
            else s.EvacuationProgress(
                state=evac_state,
                households=int(households),
                at_home=int(at_home),
                evacuated=int(evacuated),
                sheltered=int(sheltered),
                total=int(total),
            ),
        )
        for (
            w,
            point_code,
            point_name,
            hazard,
            evac_state,
            households,
            at_home,
            evacuated,
            sheltered,
            total,
        ) in rows
    ]


# --- for the page -----------------------------------------------------------------------------


def town_names(session: Session) -> dict[str, str]:
    """Code → name of the district and its towns (reference data), for the live ticker."""
    rows = session.execute(
        select(Region.code, Region.name).where(
            Region.level.in_((Level.district.value, Level.town.value))
        )
    )
    return {code: name for code, name in rows}
