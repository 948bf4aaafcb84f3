"""Displacement analytics: known answers on Fukuzono's accelerating creep curve, the tangent
angle levels and their persistence, and robustness against the data real monitors send."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cityops.warning import displacement as d

DAY = 86_400_000
HOUR = 3_600_000
T0 = 1_700_000_000_000
NONE = d.DisplacementConfig(smoothing="none")


def creep_to_failure(n: int = 100) -> tuple[np.ndarray, np.ndarray]:
    """s = 10·ln(100 / (100 − t)) mm, t in days, sampled daily: v = 10 / (100 − t) mm/day,
    so 1/v = (100 − t)/10 falls linearly to zero at t = 100 (failure)."""
    days = np.arange(n, dtype=float)
    return T0 + np.arange(n, dtype=np.int64) * DAY, 10 * np.log(100 / (100 - days))


def steady_creep(days: int = 60, v: float = 0.2, step_h: float = 24.0) -> tuple[np.ndarray, ...]:
    t = T0 + (np.arange(0, days * 24 / step_h + 1) * step_h * HOUR).astype(np.int64)
    return t, v * (t - T0) / DAY


def crossing_day(t_ms: np.ndarray, angle: np.ndarray, threshold: float) -> float:
    i = int(np.flatnonzero(angle >= threshold)[0])
    days = (t_ms - T0) / DAY
    return float(np.interp(threshold, angle[i - 1 : i + 1], days[i - 1 : i + 1]))


# -- known answers ---------------------------------------------------------------------------


def test_inverse_velocity_predicts_failure_at_day_100() -> None:
    t, s = creep_to_failure()
    r = d.analyse(t, s, NONE)
    assert r.fit is not None and r.fit.failure_ms is not None
    assert abs((r.fit.failure_ms - T0) / DAY - 100) < 0.1
    assert r.fit.a < 0 and r.fit.r2 > 0.99
    assert r.fit.points == 99  # the whole record accelerates
    assert r.fit.lead_h == pytest.approx((r.fit.failure_ms - int(t[-1])) / HOUR)


def test_inverse_velocity_with_savgol_smoothing_also_finds_day_100() -> None:
    t, s = creep_to_failure()
    r = d.analyse(t, s, d.DisplacementConfig(smoothing="savgol", window=5))
    assert r.fit is not None and r.fit.failure_ms is not None
    assert abs((r.fit.failure_ms - T0) / DAY - 100) < 0.2


@pytest.mark.parametrize(("angle", "expected_day"), [(80.0, 82.37), (85.0, 91.25)])
def test_tangent_angle_crosses_at_the_analytic_time(angle: float, expected_day: float) -> None:
    # v = 10/(100 − t) and v_uniform = 0.1: α = θ when t = 100 − 10/(0.1·tan θ).
    # With midpoint stamps the daily difference is a central difference; its relative error
    # is ≈ 1/(12·(100 − t)²) < 0.2 % here, i.e. < 0.02 day, and interpolating the angle
    # between daily stamps adds less than that. ±0.1 day keeps a margin while still failing
    # a stamp at the interval end, which lags by half a day.
    t, s = creep_to_failure()
    r = d.analyse(t, s, d.DisplacementConfig(smoothing="none", v_uniform=0.1))
    assert expected_day == pytest.approx(100 - 10 / (0.1 * math.tan(math.radians(angle))), abs=0.01)
    assert crossing_day(r.v_t_ms, r.angle_deg, angle) == pytest.approx(expected_day, abs=0.1)
    end_stamped = r.v_t_ms + DAY // 2
    assert abs(crossing_day(end_stamped, r.angle_deg, angle) - expected_day) > 0.4


def test_levels_on_the_creep_curve_rise_in_order_and_persist() -> None:
    t, s = creep_to_failure()
    r = d.analyse(t, s, d.DisplacementConfig(smoothing="none", v_uniform=0.1))
    ranks = [d.RANK[x] for x in r.levels]
    assert ranks == sorted(ranks)  # accelerating: the level never falls
    first_red = r.levels.index("red")
    assert (r.v_t_ms[first_red] - T0) / DAY == 91.5  # first stamp after 91.25
    # 3 of 4 at red: confirmed at the third red evaluation.
    assert r.level == "red"
    assert r.level_since_ms == r.v_t_ms[first_red + 2]
    assert r.level_held_h == pytest.approx((int(t[-1]) - r.level_since_ms) / HOUR)
    assert r.angle_now_deg is not None and r.angle_now_deg > 85


def test_velocity_and_acceleration_are_stamped_at_midpoints() -> None:
    t = T0 + np.array([0, 1, 2, 3], dtype=np.int64) * DAY
    s = np.array([0.0, 1.0, 4.0, 9.0])  # s = t²: v = 2t, a = 2
    r = d.analyse(t, s, NONE)
    assert ((r.v_t_ms - T0) / DAY).tolist() == [0.5, 1.5, 2.5]
    assert r.v_mm_d.tolist() == [1.0, 3.0, 5.0]  # exactly 2·t_mid
    assert ((r.a_t_ms - T0) / DAY).tolist() == [1.0, 2.0]
    assert r.a_mm_d2.tolist() == [2.0, 2.0]


# -- building blocks -------------------------------------------------------------------------


def test_tangent_angle() -> None:
    v = np.array([0.1, 0.1 * math.tan(math.radians(80)), 0.0, -0.1])
    assert d.tangent_angle(v, 0.1) == pytest.approx([45.0, 80.0, 0.0, -45.0])
    assert np.isnan(d.tangent_angle(v, 0.0)).all()
    assert np.isnan(d.tangent_angle(v, -1.0)).all()


def test_classify_boundaries() -> None:
    angles = np.array([np.nan, 0.0, 39.9, 40.0, 45.0, 45.1, 79.9, 80.0, 84.9, 85.0, 90.0])
    assert d.classify(angles) == [
        "none",
        "none",
        "none",
        "blue",
        "blue",
        "yellow",
        "yellow",
        "orange",
        "orange",
        "red",
        "red",
    ]
    assert d.classify(np.array([42.0]), blue_band=2.0) == ["none"]
    assert d.classify(np.array([70.0]), thresholds=(45.0, 60.0, 75.0)) == ["orange"]


def test_one_spike_never_persists() -> None:
    assert d.persisted_levels(["none", "red", "none", "none", "none"], 3, 4) == ["none"] * 5
    assert d.persisted_levels(["red", "red", "none", "none"], 3, 4) == ["none"] * 4


def test_k_of_n_and_per_level_persistence() -> None:
    assert d.persisted_levels(["red", "red", "none", "red"], 3, 4)[-1] == "red"
    # Three of the last four at orange-or-above, only two at red → orange.
    assert d.persisted_levels(["red", "orange", "red", "orange"], 3, 4) == [
        "none",
        "none",
        "orange",
        "orange",
    ]
    assert d.persisted_levels(["yellow", "blue", "yellow"], 1, 1) == ["yellow", "blue", "yellow"]
    assert d.persisted_levels([], 3, 4) == []
    assert d.persisted_levels(["bogus", "red"], 5, 2) == ["none", "none"]  # k clamped to n


def test_inverse_velocity_fit_needs_falling_inverse_velocity() -> None:
    t = T0 + np.arange(10, dtype=np.int64) * DAY
    decelerating = 1.0 / (1.0 + np.arange(10))
    increasing = np.linspace(1.0, 2.0, 10)
    assert d.inverse_velocity_fit(t, decelerating) is None  # no accelerating run
    fit = d.inverse_velocity_fit(t, decelerating, window_h=10 * 24)
    assert fit is not None and fit.a > 0 and fit.failure_ms is None and fit.lead_h is None
    fit = d.inverse_velocity_fit(t, increasing, now_ms=int(t[-1]))
    assert fit is not None and fit.a < 0 and fit.failure_ms is not None


def test_inverse_velocity_fit_ignores_non_positive_velocities() -> None:
    t = T0 + np.arange(8, dtype=np.int64) * DAY
    v = 1.0 / (8.0 - np.arange(8))  # 1/v = 8 − t: failure at day 8
    fit = d.inverse_velocity_fit(t, v, now_ms=int(t[-1]))
    assert fit is not None and fit.failure_ms is not None
    assert (fit.failure_ms - T0) / DAY == pytest.approx(8.0)
    assert fit.lead_h == pytest.approx(24.0)
    assert d.inverse_velocity_fit(t, np.zeros(8)) is None
    assert d.inverse_velocity_fit(t[:4], v[:4]) is None  # fewer than min_points
    assert d.inverse_velocity_fit([], []) is None


def test_moving_average_is_centred_and_keeps_a_line() -> None:
    x = np.arange(10, dtype=float)
    assert d.moving_average(x, 5).tolist() == x.tolist()
    assert d.moving_average(np.array([0.0, 0.0, 3.0, 0.0, 0.0]), 3).tolist() == [
        0.0,
        1.0,
        1.0,
        1.0,
        0.0,
    ]


def test_savgol_falls_back_to_moving_average_with_few_points() -> None:
    t = T0 + np.arange(4, dtype=np.int64) * DAY
    r = d.analyse(t, [0.0, 1.0, 2.0, 3.0], d.DisplacementConfig(smoothing="savgol", window=7))
    assert any("Savitzky" in n for n in r.notes)
    assert r.v_mm_d == pytest.approx([1.0, 1.0, 1.0])


# -- v_uniform -------------------------------------------------------------------------------


def test_v_uniform_from_the_early_window_of_a_long_record() -> None:
    t, s = creep_to_failure()
    r = d.analyse(t, s, NONE)
    assert r.v_uniform_source == "early-window"
    # Median of v over days 0..30: v(15) = 10/85.
    assert r.v_uniform == pytest.approx(10 / 85, rel=0.01)


def test_v_uniform_from_the_lower_half_of_a_short_record() -> None:
    t, s = steady_creep(days=20)
    r = d.analyse(t, s, NONE)
    assert r.v_uniform_source == "lower-half"
    assert r.v_uniform == pytest.approx(0.2)
    assert set(r.levels) == {"blue"}  # α = 45°: uniform creep
    assert r.level == "blue"


def test_configured_v_uniform_wins() -> None:
    t, s = steady_creep(days=20)
    r = d.analyse(t, s, d.DisplacementConfig(smoothing="none", v_uniform=0.02))
    assert r.v_uniform_source == "config"
    assert r.angle_now_deg == pytest.approx(math.degrees(math.atan(10)))
    assert r.level == "orange"


# -- robustness ------------------------------------------------------------------------------


@pytest.mark.parametrize("n", [0, 1, 2])
def test_too_few_points(n: int) -> None:
    t, s = steady_creep(days=5)
    r = d.analyse(t[:n], s[:n])
    assert r.level == "none" and r.fit is None
    assert r.notes
    json.dumps(r.as_dict(), allow_nan=False)


def test_dead_sensor_repeating_one_value() -> None:
    t = T0 + np.arange(200, dtype=np.int64) * HOUR
    r = d.analyse(t, np.full(200, 12.3))
    assert r.level == "none" and r.v_uniform is None
    assert any("dead" in n for n in r.notes)
    assert any("tangent angle undefined" in n for n in r.notes)


def test_dead_sensor_with_configured_v_uniform_stays_none() -> None:
    t = T0 + np.arange(200, dtype=np.int64) * HOUR
    r = d.analyse(t, np.full(200, 12.3), d.DisplacementConfig(v_uniform=0.2))
    assert r.level == "none" and set(r.levels) == {"none"}


def test_sensor_stuck_on_its_last_value() -> None:
    t, s = steady_creep(days=20, step_h=1.0)
    s = s.copy()
    s[-24:] = s[-25]
    r = d.analyse(t, s, d.DisplacementConfig(v_uniform=0.2))
    assert any("last 25 readings repeat" in n for n in r.notes)
    assert r.level == "none"  # zero velocity: no warning, but the note says why


def test_decreasing_series() -> None:
    t, s = steady_creep(days=40)
    r = d.analyse(t, -s)
    assert r.level == "none" and r.fit is None
    assert any("not positive" in n for n in r.notes)
    r = d.analyse(t, -s, d.DisplacementConfig(v_uniform=0.2))
    assert r.level == "none"
    assert np.all(r.angle_deg < 0)


def test_a_single_spike_never_raises_red() -> None:
    t, s = steady_creep(days=60, step_h=1.0)
    for i in (len(s) // 2, len(s) - 1):  # in the middle and as the newest reading
        spiked = s.copy()
        spiked[i] += 50.0
        for smoothing in ("none", "moving_average", "savgol"):
            config = d.DisplacementConfig(smoothing=smoothing, v_uniform=0.2, window=5)
            r = d.analyse(t, spiked, config)
            assert "red" not in r.levels and r.level == "blue"
            assert any("spike" in n for n in r.notes)
            assert r.fit is None or r.fit.failure_ms is None


def test_persistence_alone_stops_an_unsmoothed_spike() -> None:
    t, s = steady_creep(days=60, step_h=1.0)
    spiked = s.copy()
    spiked[-1] += 50.0
    config = d.DisplacementConfig(smoothing="none", v_uniform=0.2, despike_k=0)
    r = d.analyse(t, spiked, config)
    assert r.levels[-1] == "red"  # the raw series sees it …
    assert "red" not in r.persisted  # … persistence does not let it count
    assert r.level == "blue"


def test_hampel_keeps_trends_and_confirmed_jumps() -> None:
    x = np.arange(30, dtype=float)
    assert not d.hampel(x, 5.0).any()
    assert not d.hampel(x**2 / 10, 5.0).any()  # accelerating
    x[29] = 100.0
    assert d.hampel(x, 5.0).tolist() == [False] * 29 + [True]
    jump = np.concatenate([np.zeros(20), np.full(4, 10.0)])
    assert not d.hampel(jump, 5.0)[-4:].any()  # held by four of seven: real
    assert d.hampel(jump[:-2], 5.0)[-2:].all()  # by two: not yet
    assert not d.hampel(np.full(10, 3.0), 5.0).any()
    assert not d.hampel(x, 0.0).any()


def test_gap_is_not_interpolated_or_differentiated_across() -> None:
    t, s = steady_creep(days=20, step_h=1.0)
    gap = (t > T0 + 5 * DAY) & (t < T0 + 10 * DAY)
    r = d.analyse(t[~gap], s[~gap], NONE)
    assert any("gap" in n for n in r.notes)
    inside = (r.t_ms > T0 + 5 * DAY) & (r.t_ms < T0 + 10 * DAY)
    assert not inside.any()
    v_inside = (r.v_t_ms > T0 + 5 * DAY + HOUR) & (r.v_t_ms < T0 + 10 * DAY - HOUR)
    assert not v_inside.any()
    assert r.v_mm_d == pytest.approx(0.2)
    assert r.level == "blue"


def test_short_gaps_are_resampled_to_a_regular_step() -> None:
    t, s = steady_creep(days=10, step_h=1.0)
    keep = np.ones(len(t), bool)
    keep[[10, 11, 12, 50]] = False
    r = d.analyse(t[keep], s[keep], NONE)
    assert np.all(np.diff(r.t_ms) == HOUR)
    assert r.t_ms[-1] == t[-1]  # the grid is anchored at the newest reading
    assert r.v_mm_d == pytest.approx(0.2)


def test_downsampling_averages_each_step() -> None:
    rng = np.random.default_rng(7)
    t, s = steady_creep(days=30, step_h=1.0)
    noisy = s + rng.normal(0, 0.6, len(s))
    hourly = d.analyse(t, noisy, d.DisplacementConfig(v_uniform=0.2))
    daily = d.analyse(t, noisy, d.DisplacementConfig(step_h=24.0, v_uniform=0.2))
    assert np.median(np.diff(daily.t_ms)) == DAY
    assert np.std(daily.v_mm_d) < np.std(hourly.v_mm_d) / 10
    assert daily.level in ("none", "blue", "yellow")
    assert any("noise" in n for n in hourly.notes)


def test_duplicated_and_unsorted_timestamps() -> None:
    t, s = steady_creep(days=20)
    order = np.random.default_rng(3).permutation(len(t))
    t2 = np.concatenate([t[order], t[:5]])
    s2 = np.concatenate([s[order], s[:5] + 0.002])
    r = d.analyse(t2, s2, NONE)
    clean = d.analyse(t, s, NONE)
    assert any("out of order" in n for n in r.notes)
    assert any("duplicated" in n for n in r.notes)
    assert r.t_ms.tolist() == clean.t_ms.tolist()
    assert r.s_mm[:5] == pytest.approx(s[:5] + 0.001)  # duplicates averaged
    assert r.level == clean.level


def test_nan_and_impossible_values_are_dropped() -> None:
    t, s = steady_creep(days=20)
    s = s.copy()
    s[[3, 7]] = np.nan
    s[9] = 1e9
    tf = t.astype(float)
    tf[11] = np.nan
    r = d.analyse(tf, s, NONE)
    assert len(r.notes) >= 3
    assert r.v_mm_d == pytest.approx(0.2)


def test_readings_after_now_are_ignored() -> None:
    t, s = creep_to_failure()
    now = int(t[60])
    r = d.analyse(t, s, d.DisplacementConfig(smoothing="none", v_uniform=0.1), now_ms=now)
    assert r.t_ms[-1] == now and r.now_ms == now
    assert r.level == "yellow"
    assert any("after now_ms" in n for n in r.notes)


def test_as_dict_is_json_and_thins_for_charts() -> None:
    t, s = creep_to_failure()
    r = d.analyse(t, s, d.DisplacementConfig(v_uniform=0.1))
    full = r.as_dict()
    assert len(full["v_mm_d"]) == len(r.v_mm_d) == len(full["levels"])
    thin = r.as_dict(max_points=10)
    assert len(thin["t_ms"]) == 10 and len(thin["angle_deg"]) == 10
    assert thin["t_ms"][0] == full["t_ms"][0] and thin["t_ms"][-1] == full["t_ms"][-1]
    json.dumps(thin, allow_nan=False)
    assert thin["fit"]["failure_ms"] == r.fit.failure_ms if r.fit else False


def test_analyse_many() -> None:
    out = d.analyse_many({"GNSS-1": creep_to_failure(), "GNSS-2": steady_creep()}, NONE)
    assert set(out) == {"GNSS-1", "GNSS-2"}
    assert out["GNSS-1"].level == "red"


def test_non_numeric_input_is_noted() -> None:
    r = d.analyse(["x", "y"], ["a", "b"])  # type: ignore[list-item]
    assert r.level == "none" and "not numeric" in r.notes[0]


values = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True, width=64),
    st.floats(min_value=-1e3, max_value=1e3),
)
stamps = st.one_of(
    st.integers(min_value=T0, max_value=T0 + 400 * DAY),
    st.integers(min_value=T0, max_value=T0 + 200),
    st.floats(allow_nan=True, allow_infinity=True),
)


@settings(max_examples=300, deadline=None)
@given(
    st.lists(st.tuples(stamps, values), max_size=60),
    st.sampled_from(["none", "moving_average", "savgol", "nonsense"]),
    st.one_of(st.none(), st.floats(allow_nan=True, allow_infinity=True)),
    st.one_of(st.none(), st.floats(min_value=-1, max_value=100)),
)
def test_analyse_never_raises(
    pairs: list[tuple[float, float]], smoothing: str, v_uniform: float | None, step_h: float | None
) -> None:
    t = [p[0] for p in pairs]
    s = [p[1] for p in pairs]
    config = d.DisplacementConfig(smoothing=smoothing, v_uniform=v_uniform, step_h=step_h, window=5)
    with np.errstate(all="raise", under="ignore"):
        r = d.analyse(t, s, config)
    assert r.level in d.LEVELS
    assert set(r.levels) <= set(d.LEVELS)
    assert len(r.levels) == len(r.v_mm_d) == len(r.v_t_ms) == len(r.angle_deg)
    assert len(r.a_mm_d2) == len(r.a_t_ms)
    json.dumps(r.as_dict(max_points=7), allow_nan=False)
