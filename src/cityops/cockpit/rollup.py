"""The cockpit's daily roll-up: the 30-day figures of a district or a town read from a few hundred
rows instead of a month of cases and their timeline.

Two tables (``cockpit.models``) count per region at every level — a case in a grid counts in
its grid's, village's, town's and district's rows — and per local day:

* ``DailyIntake``: cases reported, by source and *current* category (what the summary's intake,
  trend, sources and categories count);
* ``DailyClosures``: dispatches (dispatch or self-handling), closures (verify_ok) and closures on
  time (a verify_ok marked positive) by the day of the event (the evaluation's counts behind the
  closure rates). Its region "" counts every case, as the district-wide direct count does.

They are kept in the same transaction as the case writes — ``reported`` from intake,
``recategorized`` and ``event_written`` from the lifecycle — so a rolled-back write leaves no
count behind, and rebuilt from the cases by ``rebuild`` (the migration's backfill, ``cityops
cockpit rebuild`` after a bulk load that bypassed the service layer).

Days are days of ``ZONE``, the district's (the working calendar's) zone. The cockpit reads the
roll-up when it shows days of that zone — the default display zone — and counts the cases
directly otherwise, and whenever the caller sees fewer cases than their region holds (a unit
handler): both give the same figures.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, date, datetime
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import Date, Table, case, cast, delete, func, literal, select, union_all
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from cityops.cockpit.models import DailyClosures, DailyIntake
from cityops.events.models import Case, CaseEvent

ZONE = ZoneInfo("Asia/Shanghai")
LEVELS = (6, 9, 12, 15)  # code lengths of district, town, village, grid
DISPATCHES = ("dispatch", "self_handle")
CLOSURE = "verify_ok"
COUNTED = frozenset({*DISPATCHES, CLOSURE})
NOT_CLASSIFIED = 0  # category_id of cases without a category
EVERYWHERE = ""  # the closures row that counts every case
TABLES = (DailyIntake.__tablename__, DailyClosures.__tablename__)
SQLITE_DAY = "cockpit_local_day"


def places(region_code: str) -> list[str]:
    """The codes whose rows count a case located at ``region_code``: the region and each region
    above it (the prefixes of lengths 6, 9, 12, 15 — exactly the regions R for which the
    direct count's ``within(region_code, R)`` holds)."""
    return [region_code[:n] for n in LEVELS if n <= len(region_code)]


def local_day(moment: datetime) -> date:
    return moment.astimezone(ZONE).date()


# --- kept in the transaction of the case write ------------------------------------------------


def reported(session: Session, case: Case) -> None:
    """A new case: one more on its day, for its source and category."""
    _count_intake(session, case, case.category_id, 1)


def recategorized(session: Session, case: Case, before: int | None) -> None:
    """The case's category changed from ``before`` (at registration, dispatch, rework …)."""
    if before != case.category_id:
        _count_intake(session, case, before, -1)
        _count_intake(session, case, case.category_id, 1)


def event_written(
    session: Session, case: Case, action: str, at: datetime, positive: bool | None
) -> None:
    """A timeline event of ``case``: counted when it is a dispatch or a closure."""
    if action not in COUNTED:
        return
    closed = action == CLOSURE
    day = local_day(at)
    rows = [
        {
            "region_code": code,
            "day": day,
            "dispatched": int(not closed),
            "closed": int(closed),
            "closed_on_time": int(closed and positive is True),
        }
        for code in (EVERYWHERE, *places(case.region_code))
    ]
    _add(session, DailyClosures.__table__, rows, ("dispatched", "closed", "closed_on_time"))


def _count_intake(session: Session, case: Case, category_id: int | None, n: int) -> None:
    day = local_day(case.created_at)
    rows = [
        {
            "region_code": code,
            "day": day,
            "source": case.source,
            "category_id": NOT_CLASSIFIED if category_id is None else category_id,
            "cases": n,
        }
        for code in places(case.region_code)
    ]
    _add(session, DailyIntake.__table__, rows, ("cases",))


def _add(session: Session, table: Any, rows: list[dict[str, Any]], counters: Sequence[str]) -> None:
    """Add the rows' counters to the rows with the same key (inserting those missing), in one
    statement; rows in a fixed order (district first), so two writers lock them alike."""
    if not rows:
        return
    assert isinstance(table, Table)
    dialect = session.get_bind().dialect.name
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    stmt = insert(table).values(rows)
    keys = [c.name for c in table.primary_key.columns]
    session.execute(
        stmt.on_conflict_do_update(
            index_elements=keys, set_={c: table.c[c] + stmt.excluded[c] for c in counters}
        )
    )


# --- rebuilt from the cases --------------------------------------------------------------------


def rebuild(session: Session) -> int:
    """Recount both tables from the cases and their timeline, in the caller's transaction;
    returns the rows written. Takes seconds per million cases."""
    day_of = _day_sql(session)
    session.execute(delete(DailyIntake))
    session.execute(delete(DailyClosures))

    # Each expression is one object, used in SELECT and GROUP BY alike (the same parameters).
    reported = day_of(Case.created_at).label("day")
    category = func.coalesce(Case.category_id, NOT_CLASSIFIED).label("category_id")
    by_place = (
        select(
            Case.region_code.label("code"), reported, Case.source, category, func.count().label("n")
        )
        .group_by(Case.region_code, reported, Case.source, category)
        .cte("by_place")
    )
    c = by_place.c
    intake = []
    for n in LEVELS:
        code = func.substr(c.code, 1, n).label("region_code")
        intake.append(
            select(code, c.day, c.source, c.category_id, func.sum(c.n))
            .where(func.length(c.code) >= n)
            .group_by(code, c.day, c.source, c.category_id)
        )
    _insert(session, DailyIntake.__table__, union_all(*intake))

    E = CaseEvent
    closed = E.action == CLOSURE
    at = day_of(E.at).label("day")
    by_event = (
        select(
            Case.region_code.label("code"),
            at,
            func.sum(case((E.action.in_(DISPATCHES), 1), else_=0)).label("dispatched"),
            func.sum(case((closed, 1), else_=0)).label("closed"),
            func.sum(case((closed & E.positive.is_(True), 1), else_=0)).label("on_time"),
        )
        .join(Case, Case.id == E.case_id)
        .where(E.action.in_(sorted(COUNTED)))
        .group_by(Case.region_code, at)
        .cte("by_event")
    )
    e = by_event.c
    sums = (func.sum(e.dispatched), func.sum(e.closed), func.sum(e.on_time))
    closures = [select(literal(EVERYWHERE).label("region_code"), e.day, *sums).group_by(e.day)]
    for n in LEVELS:
        code = func.substr(e.code, 1, n).label("region_code")
        closures.append(
            select(code, e.day, *sums).where(func.length(e.code) >= n).group_by(code, e.day)
        )
    _insert(session, DailyClosures.__table__, union_all(*closures))
    return sum(
        session.scalar(select(func.count()).select_from(table)) or 0
        for table in (DailyIntake, DailyClosures)
    )


def _insert(session: Session, table: Any, query: Any) -> None:
    assert isinstance(table, Table)
    session.execute(table.insert().from_select([c.name for c in table.columns], query))


def _day_sql(session: Session) -> Any:
    """SQL for the local day of a UTC timestamp column: PostgreSQL converts with its own zone
    database; SQLite (naive UTC text) calls ``local_day`` through a function registered on the
    connection."""
    connection = session.connection()
    if connection.dialect.name == "postgresql":
        return lambda column: cast(func.timezone(ZONE.key, column), Date)
    raw = connection.connection.driver_connection
    assert raw is not None
    raw.create_function(SQLITE_DAY, 1, _sqlite_day, deterministic=True)
    return lambda column: getattr(func, SQLITE_DAY)(column)


def _sqlite_day(stored: str | None) -> str | None:
    if stored is None:
        return None
    moment = datetime.fromisoformat(stored).replace(tzinfo=UTC)
    return local_day(moment).isoformat()
