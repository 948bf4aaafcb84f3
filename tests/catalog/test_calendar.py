"""Working-time calendar: hand-computed answers on the 2026 schedule, plus properties.

Exactness: the calendar turns hours into integer microseconds once, via ``timedelta(hours=h)``,
and does integer arithmetic afterwards. So the properties compare against ``timedelta(hours=h)``
with ``==`` for arbitrary float hours — no tolerance needed.
"""

from __future__ import annotations

import random
from datetime import UTC, date, datetime, time, timedelta
from importlib import resources
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st

from cityops.catalog.calendar import WorkCalendar, WorkingHours, parse_holiday_file

CST = ZoneInfo("Asia/Shanghai")
CAL = WorkCalendar.load()


def local(
    year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0, us: int = 0
) -> datetime:
    return datetime(year, month, day, hour, minute, second, us, tzinfo=CST)


def work_add(start: datetime, hours: float) -> datetime:
    return CAL.add(start, hours, working=True)


# -- known answers, 2026 schedule, default hours 08:30–12:00 + 14:00–18:00 (7.5 h/day) ------


def test_make_up_sunday_before_national_day() -> None:
    # Fri 09-18 17:00–18:00 uses 1 h; Sat 09-19 is off; Sun 09-20 is 调休上班: 08:30 + 1 h.
    assert work_add(local(2026, 9, 18, 17), 2) == local(2026, 9, 20, 9, 30)


def test_across_national_day() -> None:
    # Wed 09-30 16:00–18:00 uses 2 h, leaving 6 h. 10-01..10-07 are holidays. Thu 10-08 is an
    # ordinary workday: morning 08:30–12:00 uses 3.5 h, leaving 2.5 h → 14:00 + 2.5 h = 16:30.
    # So the deadline is Thursday 10-08 16:30, not Friday 10-09 (Mid-Autumn is not merged into
    # National Day in 2026, so the break ends on the 7th).
    assert work_add(local(2026, 9, 30, 16), 8) == local(2026, 10, 8, 16, 30)


def test_across_spring_festival() -> None:
    # Fri 02-13 15:00–18:00: 3 h (21 left). Sat 02-14 is 调休上班: 7.5 h (13.5 left).
    # 02-15..02-23 holidays. Tue 02-24: 7.5 h (6 left). Wed 02-25: morning 3.5 h (2.5 left),
    # 14:00 + 2.5 h = 16:30.
    assert work_add(local(2026, 2, 13, 15), 24) == local(2026, 2, 25, 16, 30)


def test_deadline_on_period_end_stays_there() -> None:
    # Mon 2026-01-05 08:30 + 3.5 h is exactly the end of the morning period.
    assert work_add(local(2026, 1, 5, 8, 30), 3.5) == local(2026, 1, 5, 12)
    # A whole day ends at 18:00 of that day, not 08:30 the next morning.
    assert work_add(local(2026, 1, 5, 8, 30), 7.5) == local(2026, 1, 5, 18)


def test_counting_starts_at_next_period() -> None:
    assert work_add(local(2026, 1, 5, 7, 0), 1) == local(2026, 1, 5, 9, 30)  # before work
    assert work_add(local(2026, 1, 5, 12, 30), 1) == local(2026, 1, 5, 15)  # at lunch
    assert work_add(local(2026, 1, 9, 19, 0), 1) == local(2026, 1, 12, 9, 30)  # Fri evening


def test_zero_hours_returns_start_even_off_hours() -> None:
    start = local(2026, 1, 10, 3, 17, 5, 123)  # an ordinary Saturday night
    result = work_add(start, 0)
    assert result == start
    assert result.tzinfo is UTC


def test_result_is_utc() -> None:
    result = work_add(local(2026, 3, 2, 9), 1)
    assert result.tzinfo is UTC
    assert result == datetime(2026, 3, 2, 2, 0, tzinfo=UTC)  # 10:00 in Chongqing


def test_natural_hours_ignore_calendar() -> None:
    start = local(2026, 9, 30, 16)
    assert CAL.add(start, 48, working=False) == local(2026, 10, 2, 16)
    assert CAL.elapsed(start, local(2026, 10, 2, 16), working=False) == timedelta(hours=48)


def test_natural_hours_are_absolute_across_dst() -> None:
    # Aware arithmetic within one ZoneInfo is wall-clock; natural hours must be real hours.
    new_york = ZoneInfo("America/New_York")
    start = datetime(2026, 3, 7, 12, tzinfo=new_york)  # DST begins 2026-03-08
    end = CAL.add(start, 24, working=False)
    assert end.astimezone(new_york) == datetime(2026, 3, 8, 13, tzinfo=new_york)
    assert CAL.elapsed(start, datetime(2026, 3, 8, 12, tzinfo=new_york), working=False) == (
        timedelta(hours=23)
    )


def test_elapsed_working() -> None:
    assert CAL.elapsed(local(2026, 9, 30, 16), local(2026, 10, 8, 16, 30), working=True) == (
        timedelta(hours=8)
    )
    assert CAL.elapsed(local(2026, 10, 1), local(2026, 10, 7, 23), working=True) == timedelta(0)
    assert CAL.elapsed(local(2026, 1, 6), local(2026, 1, 5), working=True) == timedelta(0)


@pytest.mark.parametrize(
    ("day", "expected"),
    [
        (date(2026, 1, 1), False),  # 元旦, a Thursday
        (date(2026, 1, 4), True),  # make-up Sunday
        (date(2026, 1, 5), True),  # ordinary Monday
        (date(2026, 1, 10), False),  # ordinary Saturday
        (date(2026, 2, 28), True),  # make-up Saturday after Spring Festival
        (date(2026, 10, 8), True),  # Thursday after National Day
        (date(2026, 10, 10), True),  # make-up Saturday
    ],
)
def test_is_workday(day: date, expected: bool) -> None:
    assert CAL.is_workday(day) is expected


def test_hours_per_day() -> None:
    assert CAL.hours_per_day() == 7.5
    single = WorkCalendar([], [], WorkingHours(((time(9), time(17)),)))
    assert single.hours_per_day() == 8.0
    # Mon 16:00 + 3 h: 1 h on Monday, then 09:00 + 2 h on Tuesday.
    assert single.add(local(2026, 3, 2, 16), 3, working=True) == local(2026, 3, 3, 11)


def test_year_without_file_uses_plain_weekends() -> None:
    # There is no holidays-2027.csv, so 2027-01-01 (a Friday, in reality 元旦) is a workday.
    # Adding the 2027 file is all it takes to change that; no code change.
    assert CAL.is_workday(date(2027, 1, 1))
    assert not CAL.is_workday(date(2027, 1, 2))
    # Thu 2026-12-31 17:00: 1 h, then Fri 2027-01-01 08:30 + 1 h.
    assert work_add(local(2026, 12, 31, 17), 2) == local(2027, 1, 1, 9, 30)


def test_long_spans_are_exact() -> None:
    # 100,000 plain weeks from Monday 2027-01-04: each week is 5 × 7.5 h, so the deadline is
    # 18:00 on the Friday of the last week. A day-by-day loop would walk ~700,000 days.
    weeks = 100_000
    monday = local(2027, 1, 4, 8, 30)
    friday = (monday + timedelta(days=7 * (weeks - 1) + 4)).replace(hour=18, minute=0)
    assert work_add(monday, 37.5 * weeks) == friday
    assert CAL.elapsed(monday, friday, working=True) == timedelta(hours=37.5 * weeks)


def test_many_typical_adds_finish() -> None:
    # Not timed (no flaky timing asserts); the implementation is O(log) per call by design.
    rng = random.Random(2026)
    origin = datetime(2026, 1, 1, tzinfo=UTC)
    for _ in range(10_000):
        start = origin + timedelta(seconds=rng.randrange(365 * 86_400))
        hours = rng.uniform(2, 240)
        assert work_add(start, hours) > start


# -- validation ------------------------------------------------------------------------------


def test_naive_datetimes_rejected() -> None:
    naive = datetime(2026, 1, 5, 9)
    with pytest.raises(ValueError):
        CAL.add(naive, 1, working=True)
    with pytest.raises(ValueError):
        CAL.add(naive, 1, working=False)
    with pytest.raises(ValueError):
        CAL.elapsed(naive, local(2026, 1, 6), working=True)
    with pytest.raises(ValueError):
        CAL.elapsed(local(2026, 1, 6), naive, working=False)


@pytest.mark.parametrize("hours", [-1, -1e-9, float("nan"), float("inf")])
def test_bad_hours_rejected(hours: float) -> None:
    for working in (True, False):
        with pytest.raises(ValueError):
            CAL.add(local(2026, 1, 5, 9), hours, working=working)


@pytest.mark.parametrize(
    "periods",
    [
        (),
        ((time(12), time(8)),),  # reversed
        ((time(9), time(9)),),  # empty
        ((time(8), time(12)), (time(11), time(14))),  # overlapping
        ((time(14), time(18)), (time(8), time(12))),  # out of order
        ((time(8, tzinfo=UTC), time(12, tzinfo=UTC)),),  # zone belongs to the calendar
    ],
)
def test_bad_working_hours_rejected(periods: tuple[tuple[time, time], ...]) -> None:
    with pytest.raises(ValueError):
        WorkingHours(periods)


def test_touching_periods_allowed() -> None:
    hours = WorkingHours(((time(8), time(12)), (time(12), time(13))))
    assert WorkCalendar([], [], hours).hours_per_day() == 5.0


def test_conflicting_dates_rejected() -> None:
    with pytest.raises(ValueError):
        WorkCalendar([date(2026, 1, 1)], [date(2026, 1, 1)])


def test_parse_holiday_file() -> None:
    text = "date,kind,name\n2026-01-01,holiday,元旦\n2026-01-04,workday,元旦调休上班\n"
    assert parse_holiday_file(text, year=2026) == ([date(2026, 1, 1)], [date(2026, 1, 4)])
    with pytest.raises(ValueError, match="kind"):
        parse_holiday_file("date,kind,name\n2026-01-01,off,元旦\n")
    with pytest.raises(ValueError, match="2027"):
        parse_holiday_file(text, year=2027)
    with pytest.raises(ValueError, match="header"):
        parse_holiday_file("day,kind,name\n2026-01-01,holiday,元旦\n")
    with pytest.raises(ValueError, match="both"):
        parse_holiday_file("date,kind,name\n2026-01-01,holiday,x\n2026-01-01,workday,y\n")


def test_packaged_2026_data_is_consistent() -> None:
    # Make-up workdays are only meaningful on weekends; a weekday "workday" would be a no-op
    # hiding a data error.
    text = resources.files("cityops.catalog").joinpath("data/holidays-2026.csv").read_text("utf-8")
    holidays, workdays = parse_holiday_file(text, year=2026)
    assert all(d.weekday() >= 5 for d in workdays)
    # 2026 has 261 Mon–Fri days (52 weeks + Thursday 01-01); 19 of them are holidays and 6
    # weekend days are make-up workdays: 261 - 19 + 6 = 248 workdays.
    assert len([d for d in holidays if d.weekday() < 5]) == 19
    assert len(workdays) == 6
    days = (date(2026, 1, 1) + timedelta(days=i) for i in range(365))
    assert sum(CAL.is_workday(d) for d in days) == 248


# -- properties ------------------------------------------------------------------------------

starts_2026 = st.datetimes(
    min_value=datetime(2026, 1, 1),
    max_value=datetime(2026, 12, 31, 23, 59, 59),
    timezones=st.just(UTC),
)
starts_2027 = st.datetimes(
    min_value=datetime(2027, 1, 1),
    max_value=datetime(2027, 12, 31, 23, 59, 59),
    timezones=st.just(UTC),
)
hours_any = st.floats(min_value=0, max_value=300, allow_nan=False)
hours_minutes = st.integers(min_value=0, max_value=300 * 60).map(lambda m: m / 60)


def _in_working_time(moment: datetime) -> bool:
    here = moment.astimezone(CST)
    return CAL.is_workday(here.date()) and any(
        begin < here.time() <= end for begin, end in CAL.hours.periods
    )


@given(starts_2026, st.one_of(hours_any, hours_minutes))
def test_add_then_elapsed_round_trips_exactly(start: datetime, hours: float) -> None:
    end = work_add(start, hours)
    assert CAL.elapsed(start, end, working=True) == timedelta(hours=hours)


@given(starts_2026, hours_any, hours_any)
def test_add_is_monotonic(start: datetime, h1: float, h2: float) -> None:
    h1, h2 = sorted((h1, h2))
    assert work_add(start, h1) <= work_add(start, h2)


@given(starts_2026, st.one_of(hours_any, hours_minutes))
def test_deadline_lies_in_working_time(start: datetime, hours: float) -> None:
    end = work_add(start, hours)
    if timedelta(hours=hours) == timedelta(0):  # rounds to 0 µs: no time passes
        assert end == start
    else:
        assert end > start
        assert _in_working_time(end)


@given(starts_2026, starts_2026, starts_2026)
def test_elapsed_is_additive(a: datetime, b: datetime, c: datetime) -> None:
    a, b, c = sorted((a, b, c))
    total = CAL.elapsed(a, c, working=True)
    assert CAL.elapsed(a, b, working=True) + CAL.elapsed(b, c, working=True) == total


@given(starts_2027)
def test_uncovered_year_has_plain_weeks(start: datetime) -> None:
    # With no 2027 file every 7-day window holds exactly five 7.5 h days.
    week_later = start + timedelta(days=7)
    assert CAL.elapsed(start, week_later, working=True) == timedelta(hours=37.5)
    assert CAL.is_workday(start.astimezone(CST).date()) == (start.astimezone(CST).weekday() < 5)


@given(starts_2026, hours_any)
def test_natural_add_is_plain_addition(start: datetime, hours: float) -> None:
    end = CAL.add(start, hours, working=False)
    assert end - start == timedelta(hours=hours)
    assert CAL.elapsed(start, end, working=False) == timedelta(hours=hours)
