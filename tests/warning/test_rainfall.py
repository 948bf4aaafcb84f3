"""Rainfall analytics: trailing totals, effective antecedent rainfall, event splitting, the
Caine and Guzzetti intensity–duration thresholds, and bad gauge data."""

from __future__ import annotations

import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cityops.warning import rainfall as rf

Q = 900_000  # 15 minutes
HOUR = 3_600_000
DAY = 86_400_000
T0 = 1_700_000_000_000


def quarter_hours(days: float) -> np.ndarray:
    return T0 + np.arange(1, int(days * 96) + 1, dtype=np.int64) * Q


# -- thresholds ------------------------------------------------------------------------------


def test_threshold_known_values() -> None:
    assert rf.threshold_intensity("caine", 1.0) == pytest.approx(14.82)
    assert rf.threshold_intensity("guzzetti", 10.0) == pytest.approx(2.20 * 10**-0.44)
    assert rf.threshold_intensity((3.0, -0.5), 4.0) == pytest.approx(1.5)
    curve = rf.threshold_intensity("guzzetti", np.array([0.1, 1.0, 1000.0]))
    assert curve == pytest.approx([2.20 * 0.1**-0.44, 2.20, 2.20 * 1000**-0.44])
    assert np.isnan(rf.threshold_intensity("caine", 0.0))
    with pytest.raises(KeyError):
        rf.threshold_intensity("nowhere", 1.0)


def test_threshold_curves_for_a_log_log_chart() -> None:
    curves = rf.threshold_curves()
    assert set(curves) == {"caine", "guzzetti"}
    for curve in curves.values():
        assert len(curve["duration_h"]) == len(curve["intensity_mm_h"]) == 30
        assert curve["duration_h"][0] == pytest.approx(0.1)
        assert curve["duration_h"][-1] == pytest.approx(1000.0)
    assert curves["caine"]["intensity_mm_h"][0] > curves["guzzetti"]["intensity_mm_h"][0]


def test_event_above_guzzetti_but_below_caine() -> None:
    # 10 h at 2 mm/h: Guzzetti I(10 h) = 0.80 mm/h, Caine I(10 h) = 6.04 mm/h.
    t = quarter_hours(3)
    mm = np.zeros(len(t))
    mm[-40:] = 0.5
    r = rf.analyse(t, mm)
    e = r.current_event
    assert e is not None
    assert e.duration_h == pytest.approx(10.0)
    assert e.intensity_mm_h == pytest.approx(2.0)
    assert e.above == {"caine": False, "guzzetti": True}
    assert e.ratio["guzzetti"] == pytest.approx(2.0 / (2.20 * 10**-0.44))
    assert e.ratio["caine"] == pytest.approx(2.0 / (14.82 * 10**-0.39))
    assert r.above == {"caine": False, "guzzetti": True}


def test_district_thresholds() -> None:
    t = quarter_hours(3)
    mm = np.zeros(len(t))
    mm[-40:] = 0.5
    config = rf.RainfallConfig(thresholds={"local": (1.5, 0.0)})
    r = rf.analyse(t, mm, config)
    assert r.above == {"local": True}
    assert r.as_dict()["threshold_curves"]["local"]["intensity_mm_h"][0] == pytest.approx(1.5)


# -- totals and antecedent rainfall ----------------------------------------------------------


def test_trailing_totals() -> None:
    t = quarter_hours(4)
    mm = np.full(len(t), 0.1)  # 0.4 mm/h
    mm[-4:] = 2.0  # the last hour: 8 mm
    r = rf.analyse(t, mm)
    assert r.total_1h == pytest.approx(8.0)
    assert r.total_24h == pytest.approx(8.0 + 92 * 0.1)
    assert r.total_72h == pytest.approx(8.0 + (72 * 4 - 4) * 0.1)
    assert r.totals_mm.keys() == {"1h", "24h", "72h"}
    assert r.interval_min == pytest.approx(15.0)
    assert not any("underestimated" in n for n in r.notes)


def test_totals_as_of_now_ms() -> None:
    t = quarter_hours(4)
    mm = np.zeros(len(t))
    mm[-4:] = 2.0
    now = int(t[-5])  # an hour before the burst ended
    r = rf.analyse(t, mm, now_ms=now)
    assert r.total_1h == 0.0 and r.now_ms == now
    assert any("after now_ms" in n for n in r.notes)


def test_effective_antecedent_rainfall_by_hand() -> None:
    t = quarter_hours(20)
    mm = np.zeros(len(t))
    now = int(t[-1])
    daily = {0: 12.0, 1: 30.0, 3: 8.0, 14: 50.0, 15: 99.0}  # day 15 is beyond N = 14
    for day, amount in daily.items():
        # One report in the middle of day i: (now − (i+1)·24 h, now − i·24 h].
        mm[np.searchsorted(t, now - day * DAY - 12 * HOUR)] = amount
    r = rf.analyse(t, mm, rf.RainfallConfig(min_event_mm=0.1))
    expected = 12.0 + 0.84 * 30.0 + 0.84**3 * 8.0 + 0.84**14 * 50.0
    assert r.antecedent_mm == pytest.approx(expected)
    assert r.daily_mm[:4] == pytest.approx([12.0, 30.0, 0.0, 8.0])
    assert len(r.daily_mm) == 15


def test_day_boundaries_of_the_antecedent_model() -> None:
    now = T0 + 10 * DAY
    t = np.array([now - DAY, now - DAY + 1, now], dtype=np.int64)
    r = rf.analyse(t, [4.0, 2.0, 1.0], rf.RainfallConfig(k=0.5, interval_min=15))
    # now − 24 h exactly belongs to day 1; a millisecond later to day 0.
    assert r.daily_mm[:2] == [3.0, 4.0]
    assert r.antecedent_mm == pytest.approx(3.0 + 0.5 * 4.0)


# -- events ----------------------------------------------------------------------------------


def test_events_split_at_dry_spells() -> None:
    t = quarter_hours(2)
    mm = np.zeros(len(t))
    mm[8:16] = 1.0  # 2 h, 8 mm
    mm[16 + 28 : 16 + 32] = 0.5  # after 7 h dry: a second event, 1 h, 2 mm
    mm[48 + 20 : 48 + 24] = 3.0  # after 5 h dry: joins the second event
    mm[150] = 0.2  # alone and below min_event_mm: dropped
    r = rf.analyse(t, mm)
    assert [e.total_mm for e in r.events] == pytest.approx([8.0, 14.0])
    first, second = r.events
    assert first.start_ms == t[8] - Q and first.end_ms == t[15]
    assert first.duration_h == pytest.approx(2.0)
    assert first.intensity_mm_h == pytest.approx(4.0)
    assert first.peak_1h_mm == pytest.approx(4.0)
    assert second.duration_h == pytest.approx(7.0)
    assert second.peak_1h_mm == pytest.approx(12.0)
    assert r.last_event is second


def test_dry_gap_is_configurable() -> None:
    t = quarter_hours(2)
    mm = np.zeros(len(t))
    mm[8:16] = 1.0
    mm[16 + 28 : 16 + 32] = 0.5
    assert len(rf.analyse(t, mm, rf.RainfallConfig(dry_gap_h=8)).events) == 1


def test_single_interval_event_lasts_one_interval() -> None:
    t = quarter_hours(1)
    mm = np.zeros(len(t))
    mm[-1] = 3.0
    e = rf.analyse(t, mm).current_event
    assert e is not None and e.duration_h == pytest.approx(0.25)
    assert e.intensity_mm_h == pytest.approx(12.0)


def test_hourly_gauge_peak_is_the_interval_rate() -> None:
    t = T0 + np.arange(1, 49, dtype=np.int64) * HOUR
    mm = np.zeros(48)
    mm[40:44] = [2.0, 9.0, 5.0, 1.0]
    e = rf.analyse(t, mm).current_event
    assert e is not None and e.peak_1h_mm == 9.0 and e.duration_h == 4.0


def test_an_old_event_is_not_current() -> None:
    t = quarter_hours(4)
    mm = np.zeros(len(t))
    mm[10:50] = 5.0  # days ago, far above both thresholds
    r = rf.analyse(t, mm)
    assert r.last_event is not None and r.last_event.above["caine"]
    assert r.current_event is None
    assert r.above == {"caine": False, "guzzetti": False}


# -- bad data --------------------------------------------------------------------------------


def test_nan_negative_and_out_of_range_values_are_rejected() -> None:
    t = quarter_hours(1)
    mm = np.full(len(t), 0.25)
    mm[[5, 6]] = np.nan
    mm[7] = -3.0
    mm[8] = 999.0
    r = rf.analyse(t, mm)
    assert r.total_24h == pytest.approx(0.25 * (96 - 4))
    assert any("NaN" in n for n in r.notes)
    assert any("rejected" in n for n in r.notes)


def test_gaps_are_noted_and_silence_is_unknown() -> None:
    t = quarter_hours(3)
    keep = (t < T0 + DAY) | (t > T0 + 2 * DAY)
    r = rf.analyse(t[keep], np.full(int(keep.sum()), 0.1))
    assert any("underestimated" in n for n in r.notes)
    r = rf.analyse(t, np.zeros(len(t)), now_ms=int(t[-1]) + 2 * HOUR)
    assert r.total_1h is None  # the gauge has been silent for an hour: unknown, not dry
    assert r.total_24h == 0.0


def test_duplicates_and_unsorted_reports() -> None:
    t = quarter_hours(1)
    mm = np.full(len(t), 0.5)
    t2 = np.concatenate([t[::-1], t[:10]])
    r = rf.analyse(t2, np.concatenate([mm, mm[:10]]))
    assert r.total_24h == pytest.approx(0.5 * 96)  # a retransmission is not more rain
    assert any("out of order" in n for n in r.notes)


def test_cumulative_counter_with_a_reset() -> None:
    t = quarter_hours(1)
    per_interval = np.full(len(t), 0.5)
    counter = np.cumsum(per_interval)
    counter[60:] -= counter[59]  # the logger restarts at zero: 0.5, 1.0 …
    r = rf.analyse(t, counter, cumulative=True)
    assert r.total_24h == pytest.approx(0.5 * 95)  # the first reading has no increment
    assert any("reset" in n for n in r.notes)


def test_empty_input() -> None:
    r = rf.analyse([], [])
    assert r.totals_mm == {"1h": None, "24h": None, "72h": None}
    assert r.antecedent_mm is None and r.events == [] and r.current_event is None
    assert r.above == {"caine": False, "guzzetti": False}
    json.dumps(r.as_dict(), allow_nan=False)


def test_as_dict_is_json() -> None:
    t = quarter_hours(3)
    mm = np.zeros(len(t))
    mm[-40:] = 0.5
    out = rf.analyse(t, mm).as_dict()
    json.dumps(out, allow_nan=False)
    assert out["current_event"]["above"] == {"caine": False, "guzzetti": True}
    assert len(out["threshold_curves"]["guzzetti"]["duration_h"]) == 30


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.one_of(
                st.integers(min_value=T0, max_value=T0 + 30 * DAY),
                st.floats(allow_nan=True, allow_infinity=True),
            ),
            st.one_of(st.floats(allow_nan=True, allow_infinity=True), st.floats(0, 20)),
        ),
        max_size=80,
    ),
    st.booleans(),
)
def test_analyse_never_raises(pairs: list[tuple[float, float]], cumulative: bool) -> None:
    with np.errstate(all="raise", under="ignore"):
        r = rf.analyse([p[0] for p in pairs], [p[1] for p in pairs], cumulative=cumulative)
    json.dumps(r.as_dict(), allow_nan=False)
    for e in r.events:
        assert e.duration_h > 0 and e.total_mm >= 1.0
