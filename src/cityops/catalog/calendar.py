"""Working-time calendar for case clocks (办件时限的工作日历).

Model
-----
A case deadline is counted either in *natural* hours (absolute elapsed time, the calendar plays
no part) or in *working* hours of the unit's calendar.

* A **workday** is Monday–Friday, unless the date is a public holiday, or a Saturday/Sunday that
  the State Council schedule turns into a make-up workday (调休上班).
* Holidays and make-up workdays come from ``cityops/catalog/data/holidays-YYYY.csv`` (columns
  ``date,kind,name``; ``kind`` is ``holiday`` or ``workday``). A new year is added by dropping in
  a new file. A year without a file falls back to plain weekends: the calendar keeps working, it
  just does not know that year's holidays (so e.g. 2027-01-01 counts as an ordinary Friday).
* On a workday, working time is the union of the :class:`WorkingHours` periods, read on the local
  wall clock of the calendar's zone (Asia/Shanghai by default, which has no DST).

Arithmetic
----------
Every local instant ``x`` (wall-clock date ``d``, time of day ``t``) has a *working-time
coordinate* ``F(x) = D * P(d) + (c(t) if d is a workday else 0)``, in integer microseconds, where
``D`` is the working time of one day, ``P(d)`` the number of workdays before ``d`` (counted from
0001-01-01) and ``c(t)`` the working time of the day before ``t``. ``F`` is non-decreasing and
flat outside working time, so:

* ``elapsed(a, b, working=True) = F(b) - F(a)`` — additive by construction;
* ``add(a, h, working=True)`` is the *earliest* instant ``x`` with ``F(x) = F(a) + h``. Taking the
  earliest makes a deadline that lands on the end of a period stay there (12:00, not 14:00), and
  makes counting from a non-working instant start at the next period.

``P`` is computed in closed form (weekdays per whole week) corrected by binary search over the
sorted exceptions, and inverted by galloping + binary search, so a call costs O(log) however many
days it spans — nothing iterates over days or minutes.

Hours are converted to integer microseconds exactly once, by ``timedelta(hours=h)``; everything
after that is integer arithmetic, hence ``elapsed(a, add(a, h)) == timedelta(hours=h)`` exactly.

In a zone with DST, working time is measured on the wall clock, so a period that straddled a
transition would count its nominal length; this cannot happen with Asia/Shanghai.
"""

from __future__ import annotations

import csv
import io
import math
import re
from bisect import bisect_left
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from importlib import resources
from zoneinfo import ZoneInfo

__all__ = ["DEFAULT_HOURS", "WorkCalendar", "WorkingHours", "parse_holiday_file"]

_US_PER_SECOND = 1_000_000
_US_PER_HOUR = 3600 * _US_PER_SECOND
_ONE_US = timedelta(microseconds=1)
_MAX_ORDINAL = date.max.toordinal()
_FILE_NAME = re.compile(r"holidays-(\d{4})\.csv")


def _time_us(t: time) -> int:
    return ((t.hour * 60 + t.minute) * 60 + t.second) * _US_PER_SECOND + t.microsecond


def _us_time(us: int) -> time:
    seconds, micro = divmod(us, _US_PER_SECOND)
    minutes, second = divmod(seconds, 60)
    hour, minute = divmod(minutes, 60)
    return time(hour, minute, second, micro)


@dataclass(frozen=True)
class WorkingHours:
    """The working periods of a workday, as local wall-clock times."""

    periods: tuple[tuple[time, time], ...] = (
        (time(8, 30), time(12, 0)),
        (time(14, 0), time(18, 0)),
    )

    def __post_init__(self) -> None:
        # Normalise so that a list passed by a caller still yields a hashable, immutable value
        # (WorkCalendar.load is meant to be cacheable on its arguments).
        periods = tuple((start, end) for start, end in self.periods)
        object.__setattr__(self, "periods", periods)
        if not periods:
            raise ValueError("WorkingHours needs at least one period")
        previous_end: time | None = None
        for start, end in periods:
            if not isinstance(start, time) or not isinstance(end, time):
                raise ValueError(f"period bounds must be datetime.time, got {start!r}, {end!r}")
            if start.tzinfo is not None or end.tzinfo is not None:
                # The zone belongs to the calendar; a second one here would be ambiguous.
                raise ValueError("period bounds must be naive times (the calendar has the zone)")
            if not start < end:
                raise ValueError(f"period {start}–{end}: start must be before end")
            if previous_end is not None and start < previous_end:
                raise ValueError(f"period {start}–{end} overlaps or is out of order")
            previous_end = end

    def day_length(self) -> timedelta:
        """Working time of one workday."""
        return timedelta(microseconds=sum(_time_us(e) - _time_us(s) for s, e in self.periods))


DEFAULT_HOURS = WorkingHours()


def parse_holiday_file(
    text: str, *, source: str = "<string>", year: int | None = None
) -> tuple[list[date], list[date]]:
    """Parse one ``holidays-YYYY.csv`` text into ``(holidays, workdays)``.

    ``year``, when given, must match every date: a row filed under the wrong year would silently
    shift a holiday, so it is rejected rather than trusted.
    """
    reader = csv.DictReader(io.StringIO(text))
    if reader.fieldnames is None or [f.strip() for f in reader.fieldnames] != [
        "date",
        "kind",
        "name",
    ]:
        raise ValueError(f"{source}: header must be 'date,kind,name', got {reader.fieldnames}")
    holidays: list[date] = []
    workdays: list[date] = []
    seen: dict[date, str] = {}
    for row in reader:
        where = f"{source}:{reader.line_num}"
        raw_date = (row.get("date") or "").strip()
        kind = (row.get("kind") or "").strip()
        try:
            day = date.fromisoformat(raw_date)
        except ValueError:
            raise ValueError(f"{where}: bad date {raw_date!r}") from None
        if year is not None and day.year != year:
            raise ValueError(f"{where}: {day} does not belong in the {year} file")
        if day in seen and seen[day] != kind:
            raise ValueError(f"{where}: {day} is listed as both {seen[day]} and {kind}")
        seen[day] = kind
        if kind == "holiday":
            holidays.append(day)
        elif kind == "workday":
            workdays.append(day)
        else:
            raise ValueError(f"{where}: kind must be 'holiday' or 'workday', got {kind!r}")
    return holidays, workdays


class WorkCalendar:
    """Workdays plus working hours in one zone; see the module docstring for the model.

    Instances are immutable after construction and safe to share between threads.
    """

    def __init__(
        self,
        holidays: Iterable[date],
        workdays: Iterable[date],
        hours: WorkingHours = DEFAULT_HOURS,
        zone: str = "Asia/Shanghai",
    ) -> None:
        off = {d.toordinal() for d in holidays}
        on = {d.toordinal() for d in workdays}
        both = off & on
        if both:
            clash = ", ".join(str(date.fromordinal(o)) for o in sorted(both))
            raise ValueError(f"dates both holiday and make-up workday: {clash}")
        self.hours = hours
        self.zone = zone
        self._tz = ZoneInfo(zone)
        self._holidays = frozenset(off)
        self._workdays = frozenset(on)
        # Only exceptions that change the plain Mon–Fri answer matter for counting: a holiday on
        # a Sunday or a "workday" on a Tuesday is a no-op, and counting it would skew P.
        self._removed = sorted(o for o in off if _plain_weekday(o))
        self._added = sorted(o for o in on if not _plain_weekday(o))
        self._bounds = [(_time_us(s), _time_us(e)) for s, e in hours.periods]
        self._day_us = sum(e - s for s, e in self._bounds)

    @classmethod
    def load(cls, hours: WorkingHours = DEFAULT_HOURS, zone: str = "Asia/Shanghai") -> WorkCalendar:
        """The calendar from the packaged ``holidays-*.csv`` files.

        Pure in its (hashable) arguments, so callers may wrap it in ``functools.cache``.
        """
        holidays: list[date] = []
        workdays: list[date] = []
        folder = resources.files("cityops.catalog").joinpath("data")
        for entry in sorted(folder.iterdir(), key=lambda e: e.name):
            match = _FILE_NAME.fullmatch(entry.name)
            if match is None or not entry.is_file():
                continue
            # utf-8-sig: spreadsheet tools like to prepend a BOM to CSV exports.
            text = entry.read_text(encoding="utf-8-sig")
            off, on = parse_holiday_file(text, source=entry.name, year=int(match.group(1)))
            holidays.extend(off)
            workdays.extend(on)
        return cls(holidays, workdays, hours, zone)

    def is_workday(self, d: date) -> bool:
        """Mon–Fri unless a holiday; Sat/Sun only if a make-up workday."""
        return self._is_workday(d.toordinal())

    def hours_per_day(self) -> float:
        return self._day_us / _US_PER_HOUR

    def add(self, start: datetime, hours: float, *, working: bool) -> datetime:
        """The instant ``hours`` (natural or working) after ``start``, in UTC."""
        start_utc = _to_utc(start, "start")
        amount = _hours_us(hours)
        if not working:
            # In UTC: aware + timedelta in a local zone is wall-clock arithmetic, not elapsed.
            return start_utc + timedelta(microseconds=amount)
        if amount == 0:
            # F is flat outside working time; the earliest instant at the same F would be
            # *before* start, so zero is defined as "no time passes".
            return start_utc
        target = self._coordinate(start_utc) + amount
        # Split target into (day index, time within the day) with the remainder in (0, D], so a
        # whole number of days ends at the last period's end rather than the next morning.
        index, within = divmod(target - 1, self._day_us)
        within += 1
        ordinal = self._nth_workday(index, start_utc.astimezone(self._tz).toordinal())
        for begin, end in self._bounds:
            if within <= end - begin:
                local = datetime.combine(date.fromordinal(ordinal), _us_time(begin + within))
                return local.replace(tzinfo=self._tz).astimezone(UTC)
            within -= end - begin
        raise AssertionError("remainder exceeds the working day")  # pragma: no cover

    def elapsed(self, start: datetime, end: datetime, *, working: bool) -> timedelta:
        """Natural: ``end - start``. Working: working time inside ``[start, end]`` (0 if empty)."""
        # In UTC: subtracting two datetimes sharing one tzinfo ignores their offsets.
        start_utc = _to_utc(start, "start")
        end_utc = _to_utc(end, "end")
        if not working:
            return end_utc - start_utc
        if end_utc <= start_utc:
            return timedelta(0)
        span = self._coordinate(end_utc) - self._coordinate(start_utc)
        return timedelta(microseconds=max(span, 0))

    # -- internals -------------------------------------------------------------------------

    def _is_workday(self, ordinal: int) -> bool:
        if ordinal in self._holidays:
            return False
        return ordinal in self._workdays or _plain_weekday(ordinal)

    def _workdays_before(self, ordinal: int) -> int:
        """P: workdays with ordinal in [1, ordinal)."""
        days = ordinal - 1  # ordinal 1 (0001-01-01) is a Monday
        weeks, rest = divmod(days, 7)
        plain = 5 * weeks + min(rest, 5)
        return plain - bisect_left(self._removed, ordinal) + bisect_left(self._added, ordinal)

    def _coordinate(self, instant: datetime) -> int:
        """F: working microseconds from the calendar's origin up to ``instant``."""
        local = instant.astimezone(self._tz)
        ordinal = local.toordinal()
        value = self._day_us * self._workdays_before(ordinal)
        if self._is_workday(ordinal):
            now = _time_us(local.time())
            value += sum(max(0, min(now, end) - begin) for begin, end in self._bounds)
        return value

    def _nth_workday(self, index: int, low: int) -> int:
        """The workday with exactly ``index`` workdays before it; requires P(low) <= index."""

        # Smallest w with P(w + 1) > index; the predicate is monotone in w.
        def reached(w: int) -> bool:
            return self._workdays_before(w + 1) > index

        # First guess from five workdays a week, then gallop: holiday runs only stretch it by
        # days, so this rarely needs more than a couple of probes before bisecting.
        guess = low + (index - self._workdays_before(low)) * 7 // 5
        step = 8
        high = min(guess, _MAX_ORDINAL)
        while not reached(high):
            if high >= _MAX_ORDINAL:
                raise OverflowError("deadline falls after 9999-12-31")
            low = high + 1
            high = min(high + step, _MAX_ORDINAL)
            step *= 2
        while low < high:
            middle = (low + high) // 2
            if reached(middle):
                high = middle
            else:
                low = middle + 1
        return low


def _plain_weekday(ordinal: int) -> bool:
    return (ordinal - 1) % 7 < 5


def _to_utc(moment: datetime, name: str) -> datetime:
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError(f"{name} must be timezone-aware, got naive {moment!r}")
    return moment.astimezone(UTC)


def _hours_us(hours: float) -> int:
    if not math.isfinite(hours):
        raise ValueError(f"hours must be finite, got {hours!r}")
    if hours < 0:
        raise ValueError(f"hours must not be negative, got {hours!r}")
    # The single rounding step: timedelta rounds to the microsecond (half-even).
    return timedelta(hours=hours) // _ONE_US
