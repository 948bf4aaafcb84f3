"""Case clocks: a deadline from category × urgency on the working calendar, paused while
parked, extended by approved extensions, and a ladder of steps (warn, urge, supervise,
escalate) at fractions of the time limit."""

from __future__ import annotations

from datetime import datetime

from cityops.catalog import service as catalog
from cityops.catalog.models import Category
from cityops.events.models import Case

# Fractions of the limit at which the worker warns, urges (overdue), supervises and escalates;
# set from CITYOPS_CLOCK_LADDER at start-up (configure()).
LADDER: tuple[float, ...] = (0.8, 1.0, 1.5, 2.0)


def configure(ladder: tuple[float, ...]) -> None:
    global LADDER
    if len(ladder) != 4 or list(ladder) != sorted(ladder) or ladder[0] <= 0:
        raise ValueError("the clock ladder needs four increasing positive fractions")
    LADDER = tuple(ladder)


def _at(case: Case, fraction: float) -> datetime:
    assert case.clock_started_at is not None and case.limit_hours is not None
    return catalog.calendar().add(
        case.clock_started_at,
        fraction * case.limit_hours + case.paused_hours,
        working=case.clock == "working",
    )


def start(case: Case, category: Category, now: datetime) -> None:
    """A fresh clock for a new assignment (dispatch, self-handling, rework)."""
    case.clock = category.clock
    case.clock_started_at = now
    case.limit_hours = category.limit_hours(case.urgency)
    case.paused_hours = 0.0
    case.paused_at = None
    case.clock_step = 0
    case.overdue = False
    reschedule(case)


def reschedule(case: Case) -> None:
    """Deadline and the next ladder step from the clock's current terms."""
    if case.clock_started_at is None or case.limit_hours is None:
        case.deadline_at = case.next_clock_at = None
        return
    case.deadline_at = _at(case, 1.0)
    case.next_clock_at = (
        _at(case, LADDER[case.clock_step]) if case.clock_step < len(LADDER) else None
    )


def stop(case: Case) -> None:
    """No more ladder steps (handled, closed, voided …); the deadline stays for the record."""
    case.next_clock_at = None


def pause(case: Case, now: datetime) -> None:
    case.paused_at = now
    case.next_clock_at = None


def resume(case: Case, now: datetime) -> None:
    if case.paused_at is not None and case.clock_started_at is not None:
        spent = catalog.calendar().elapsed(case.paused_at, now, working=case.clock == "working")
        case.paused_hours += spent.total_seconds() / 3600
    case.paused_at = None
    reschedule(case)


def extend(case: Case, hours: float) -> None:
    if case.limit_hours is None:
        return
    case.limit_hours += hours
    reschedule(case)


def fraction_used(case: Case, now: datetime) -> float | None:
    """How much of the limit has been used (1.0 = at the deadline)."""
    if case.clock_started_at is None or not case.limit_hours:
        return None
    end = case.paused_at or now
    used = catalog.calendar().elapsed(case.clock_started_at, end, working=case.clock == "working")
    return max(0.0, used.total_seconds() / 3600 - case.paused_hours) / case.limit_hours
