"""Displacement analytics for one GNSS station or crack meter: velocity, acceleration, the
improved tangent angle with its warning level, and the inverse-velocity failure-time forecast.

Pipeline
--------
1. **Clean.** Readings are sorted by time (a gateway with a skewed clock delivers them out of
   order), readings sharing a timestamp are averaged, and non-finite or implausible values
   (``|s| > max_abs_mm``) are dropped. Every repair is reported in ``notes``.
2. **Despike.** A Hampel filter (Hampel 1974; Pearson 2002) drops readings more than
   ``despike_k`` robust standard deviations from the median of their 7-reading window. The
   k-of-n persistence alone is not enough: smoothing spreads a spike at the *newest* reading
   over the last few points, all rising, which would look like k consecutive high velocities.
   A genuine jump is kept once it is held by four of the seven readings.
3. **Split at gaps.** An interval longer than ``max(max_gap_h, 2 × step)`` splits the record
   into segments; nothing is interpolated or differentiated across a gap, because a velocity
   averaged over a week of silence says nothing about the velocity now.
4. **Resample** each segment to a regular step (``step_h``, default the median sampling
   interval), anchored at the segment's *last* reading so the newest value always survives.
5. **Smooth** before differentiating — differentiation amplifies noise by 1/Δt. A centred
   moving average whose window shrinks symmetrically at the ends (no phase lag, unbiased for
   a linear trend; the last point stays raw, which the persistence rule guards), or a
   Savitzky–Golay filter (``scipy.signal.savgol_filter``), which keeps the curvature of an
   accelerating record better.
6. **Differentiate.** v = Δs/Δt in mm/day and a = Δv/Δt in mm/day², each stamped at the
   *midpoint* of its interval. A forward difference stamped at the interval end lags the true
   velocity by half a step (half a day for daily data), which matters near failure; the
   midpoint stamp makes it a central difference, accurate to O(Δt²).

Improved tangent angle (许强 等, 2009)
-------------------------------------
The classical tangent angle of a displacement–time curve depends on the axis scales. Xu Qiang
et al. remove that arbitrariness by converting displacement into the time dimension with the
velocity of the uniform (steady creep) stage: T(t) = s(t) / v_uniform. The angle of the
T–t curve is α = arctan(ΔT/Δt) = arctan(v / v_uniform), in degrees: 45° during steady creep,
below it while decelerating, rising towards 90° as the slope accelerates to failure.

Warning levels (defaults; ``thresholds=(45, 80, 85)``, ``blue_band=5``):

============================  ========  ==================================================
angle α                       level     stage (Xu et al.)
============================  ========  ==================================================
α < 40°                       none      initial / decelerating deformation
40° ≤ α ≤ 45°                 blue      uniform (steady) creep, α ≈ 45°
45° < α < 80°                 yellow    initial acceleration
80° ≤ α < 85°                 orange    medium acceleration
α ≥ 85°                       red       imminent failure (临滑)
============================  ========  ==================================================

Angles within 1e-9° of a boundary count as on it, so perfectly steady creep stays blue despite
floating-point round-off. Noise at steady creep still flickers between blue and yellow — the
k-of-n persistence damps it; a district can also set ``blue_above`` (degrees above 45° still
blue, default 0 = the mapping above) to make the blue band symmetric.

``v_uniform`` is taken from the monitor's configuration when a geologist has fixed it.
Otherwise it is estimated: the median velocity over the first ``uniform_days`` of the record
when the record is at least twice that long (the early stretch is then a genuine early
stretch), else the median of the lower half of all velocities — in a short record that is
already accelerating, the slow half is the best available proxy for steady creep. Either
estimate needs ``min_uniform_points`` velocities. When v_uniform ≤ 0 (a dead or retreating
sensor) the angle is undefined and the level stays "none".

Persistence: a level counts only once ``persist_k`` of the last ``persist_n`` evaluations
reached it or higher (defaults 3 of 4), so one bad reading never raises a warning.

Inverse-velocity forecast (Fukuzono, 1985)
------------------------------------------
In tertiary creep the inverse velocity falls roughly linearly with time, 1/v = a·t + b, and
reaches zero — failure — at t_f = −b/a (Fukuzono 1985; the α = 2 case of Voight 1988). The
fit uses the trailing run over which the (lightly smoothed) velocity keeps increasing, or a
fixed trailing window (``fit_window_h``), needs ``min_fit_points`` positive velocities, and
yields a failure time only when a < 0.

References
----------
- 许强, 曾裕平, 钱江澎, 等 (2009). 一种改进的切线角及对应的滑坡预警判据. 地质通报 28(4): 501–505.
- Xu Q., Peng D., Zhang S., et al. (2020). Successful implementations of a real-time and
  intelligent early warning system for loess landslides on the Heifangtai terrace, China.
  Engineering Geology 278: 105817.
- Fukuzono T. (1985). A new method for predicting the failure time of a slope. Proc. 4th
  International Conference and Field Workshop on Landslides, Tokyo, 145–150.
- Hampel F. R. (1974). The influence curve and its role in robust estimation. Journal of the
  American Statistical Association 69(346): 383–393.
- Pearson R. K. (2002). Outliers in process modeling and identification. IEEE Transactions on
  Control Systems Technology 10(1): 55–63.
- Voight B. (1988). A method for prediction of volcanic eruptions. Nature 332: 125–130.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt
from scipy.signal import savgol_filter  # type: ignore[import-untyped]

LEVELS = ("none", "blue", "yellow", "orange", "red")
RANK = {name: i for i, name in enumerate(LEVELS)}
_LEVEL_OBJECTS = np.array(LEVELS, dtype=object)  # indexing it yields the str objects
SMOOTHING = ("none", "moving_average", "savgol")

MS_PER_H = 3_600_000.0
MS_PER_DAY = 86_400_000.0
# Epoch ms beyond ±1e14 (≈ year 5138) cannot be a real reading and would overflow int64
# arithmetic further down.
MAX_ABS_MS = 1e14
# Round-off tolerance at the level boundaries, in degrees.
ANGLE_EPS = 1e-9
# Forecasts further out than this are the fit of a nearly flat line, not a prediction.
MAX_FORECAST_DAYS = 36_500.0

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
ArrayLike = Sequence[float] | Sequence[int] | npt.NDArray[Any]


@dataclass(frozen=True)
class DisplacementConfig:
    smoothing: str = "moving_average"  # none | moving_average | savgol
    window: int = 3
    polyorder: int = 2
    v_uniform: float | None = None  # mm/day; None → estimate from the record
    uniform_days: float = 30.0
    thresholds: tuple[float, float, float] = (45.0, 80.0, 85.0)  # yellow >45, orange ≥80, red ≥85
    blue_band: float = 5.0
    blue_above: float = 0.0  # > 0 extends blue above the yellow threshold
    persist_k: int = 3
    persist_n: int = 4
    min_fit_points: int = 5
    max_gap_h: float = 48.0
    resample: bool = True
    step_h: float | None = None  # None → median sampling interval
    fit_window_h: float | None = None  # None → the trailing accelerating run
    min_uniform_points: int = 3
    max_abs_mm: float = 1e6
    despike_k: float = 5.0  # Hampel filter: robust σ from the window median; 0 disables
    despike_window: int = 7
    despike_min_mm: float = 0.1  # a smaller deviation is never a spike (sensor resolution)


@dataclass
class InverseVelocityFit:
    a: float  # slope of 1/v against time, (day/mm) per day
    b: float  # 1/v at the window start, day/mm
    r2: float
    points: int
    start_ms: int
    end_ms: int
    failure_ms: int | None  # t_f as epoch ms, None when a >= 0
    lead_h: float | None  # failure time minus "now"

    def as_dict(self) -> dict[str, Any]:
        return {
            "a": _json_float(self.a),
            "b": _json_float(self.b),
            "r2": _json_float(self.r2),
            "points": self.points,
            "start_ms": self.start_ms,
            "end_ms": self.end_ms,
            "failure_ms": self.failure_ms,
            "lead_h": _json_float(self.lead_h),
        }


@dataclass
class DisplacementResult:
    t_ms: IntArray  # cleaned, resampled, smoothed input
    s_mm: FloatArray
    v_t_ms: IntArray  # velocity at interval midpoints
    v_mm_d: FloatArray
    a_t_ms: IntArray  # acceleration at midpoints of the velocity stamps
    a_mm_d2: FloatArray
    v_uniform: float | None
    angle_deg: FloatArray  # aligned with v_t_ms, NaN when undefined
    levels: list[str]  # raw level per velocity sample
    level: str  # persisted current level
    level_since_ms: int | None  # when the persisted current level began
    fit: InverseVelocityFit | None
    notes: list[str]
    persisted: list[str] = field(default_factory=list)  # persisted level per velocity sample
    level_held_h: float | None = None  # now − level_since_ms
    angle_now_deg: float | None = None  # median of the last persist_n angles
    now_ms: int | None = None
    v_uniform_source: str | None = None  # config | early-window | lower-half

    def as_dict(self, max_points: int | None = None) -> dict[str, Any]:
        """JSON-ready; ``max_points`` thins each series evenly for a chart, keeping the ends."""
        si = _thin(len(self.t_ms), max_points)
        vi = _thin(len(self.v_t_ms), max_points)
        ai = _thin(len(self.a_t_ms), max_points)
        return {
            "t_ms": self.t_ms[si].tolist(),
            "s_mm": _json_list(self.s_mm[si]),
            "v_t_ms": self.v_t_ms[vi].tolist(),
            "v_mm_d": _json_list(self.v_mm_d[vi]),
            "a_t_ms": self.a_t_ms[ai].tolist(),
            "a_mm_d2": _json_list(self.a_mm_d2[ai]),
            "angle_deg": _json_list(self.angle_deg[vi]),
            "levels": [self.levels[i] for i in vi],
            "persisted": [self.persisted[i] for i in vi] if self.persisted else [],
            "v_uniform": _json_float(self.v_uniform),
            "v_uniform_source": self.v_uniform_source,
            "level": self.level,
            "level_since_ms": self.level_since_ms,
            "level_held_h": _json_float(self.level_held_h),
            "angle_now_deg": _json_float(self.angle_now_deg),
            "now_ms": self.now_ms,
            "fit": self.fit.as_dict() if self.fit else None,
            "notes": list(self.notes),
        }


# -- public functions ----------------------------------------------------------------------


def analyse(
    t_ms: ArrayLike,
    s_mm: ArrayLike,
    config: DisplacementConfig = DisplacementConfig(),
    now_ms: int | None = None,
) -> DisplacementResult:
    """Analyse one monitor's cumulative displacement ``s_mm`` (mm) at ``t_ms`` (epoch ms).

    Never raises on bad data: whatever cannot be computed is None / NaN / "none", with the
    reason in ``notes``."""
    t, s, notes = clean_series(t_ms, s_mm, lo=-config.max_abs_mm, hi=config.max_abs_mm)
    t, s = _until(t, s, now_ms, notes)
    now = int(now_ms) if now_ms is not None else (int(t[-1]) if len(t) else None)
    _check_stuck(s, notes)
    spikes = hampel(s, config.despike_k, config.despike_window, config.despike_min_mm)
    if spikes.any():
        notes.append(f"{int(spikes.sum())} spike(s) removed (Hampel filter)")
        t, s = t[~spikes], s[~spikes]
    if len(t) < 2:
        notes.append(f"too few readings ({len(t)}) for a velocity")
        return _empty(t, s, notes, now)
    t0 = int(t[0])
    days = (t - t0) / MS_PER_DAY
    step = _step_days(days, config, notes)
    series = _segment_series(days, s, step, config, notes)
    return _assemble(series, t0, config, now, notes)


def analyse_many(
    series: Mapping[str, tuple[ArrayLike, ArrayLike]],
    config: DisplacementConfig = DisplacementConfig(),
    now_ms: int | None = None,
) -> dict[str, DisplacementResult]:
    """``analyse`` for each monitor code → (t_ms, s_mm)."""
    return {code: analyse(t, s, config, now_ms) for code, (t, s) in series.items()}


def tangent_angle(v_mm_d: npt.NDArray[Any], v_uniform: float) -> FloatArray:
    """Improved tangent angle α = arctan(v / v_uniform) in degrees; NaN when undefined."""
    v = np.asarray(v_mm_d, dtype=np.float64)
    if not (math.isfinite(v_uniform) and v_uniform > 0):
        return np.full(v.shape, np.nan)
    with np.errstate(over="ignore"):  # v / v_uniform → ±inf is a valid ±90°
        return np.degrees(np.arctan(v / v_uniform))


def classify(
    angle_deg: npt.NDArray[Any],
    thresholds: tuple[float, float, float] = (45.0, 80.0, 85.0),
    blue_band: float = 5.0,
    blue_above: float = 0.0,
) -> list[str]:
    """Raw level per angle (see the table in the module docstring)."""
    angle = np.asarray(angle_deg, dtype=np.float64)
    return _names(_level_ranks(angle, thresholds, blue_band, blue_above))


def persisted_levels(levels: Sequence[str], k: int, n: int) -> list[str]:
    """Level per evaluation that counts: the highest level that at least ``k`` of the last
    ``n`` evaluations reached or exceeded. Unknown names count as "none"."""
    ranks = np.array([RANK.get(x, 0) for x in levels], dtype=np.int64)
    return _names(_persist_ranks(ranks, k, n))


def inverse_velocity_fit(
    t_ms: npt.NDArray[Any] | Sequence[int],
    v_mm_d: npt.NDArray[Any] | Sequence[float],
    now_ms: int | None = None,
    min_points: int = 5,
    window_h: float | None = None,
) -> InverseVelocityFit | None:
    """Fukuzono's fit of 1/v = a·t + b over the trailing accelerating run (or the trailing
    ``window_h``); None when too few positive velocities are available."""
    return _inverse_velocity_fit(t_ms, v_mm_d, now_ms, min_points, window_h, [])


def clean_series(
    t_ms: ArrayLike, values: ArrayLike, *, lo: float, hi: float
) -> tuple[IntArray, FloatArray, list[str]]:
    """Sorted, de-duplicated (mean of equal timestamps), finite readings with lo ≤ x ≤ hi.
    Returns (t_ms int64, values float64, notes)."""
    notes: list[str] = []
    try:
        t = np.asarray(t_ms, dtype=np.float64).ravel()
        x = np.asarray(values, dtype=np.float64).ravel()
    except (TypeError, ValueError):
        notes.append("input is not numeric; ignored")
        return np.zeros(0, np.int64), np.zeros(0), notes
    if len(t) != len(x):
        notes.append(f"{len(t)} timestamps but {len(x)} values; extra ones ignored")
        m = min(len(t), len(x))
        t, x = t[:m], x[:m]
    t, x = _drop_invalid(t, x, lo, hi, notes)
    if len(t) and np.any(np.diff(t) < 0):
        notes.append("timestamps out of order (clock skew?); sorted")
    return (*_dedupe(np.rint(t).astype(np.int64), x, notes), notes)


# -- cleaning ------------------------------------------------------------------------------


def _drop_invalid(
    t: FloatArray, x: FloatArray, lo: float, hi: float, notes: list[str]
) -> tuple[FloatArray, FloatArray]:
    with np.errstate(invalid="ignore"):
        bad_t = ~(np.isfinite(t) & (np.abs(t) <= MAX_ABS_MS))
        nan_x = ~np.isfinite(x)
        out_x = ~nan_x & ((x < lo) | (x > hi))
    if bad_t.any():
        notes.append(f"{int(bad_t.sum())} readings with a missing or impossible timestamp dropped")
    if (nan_x & ~bad_t).any():
        notes.append(f"{int((nan_x & ~bad_t).sum())} missing (NaN) values dropped")
    if (out_x & ~bad_t).any():
        notes.append(f"{int((out_x & ~bad_t).sum())} values outside [{lo:g}, {hi:g}] rejected")
    keep = ~(bad_t | nan_x | out_x)
    return t[keep], x[keep]


def _dedupe(t: IntArray, x: FloatArray, notes: list[str]) -> tuple[IntArray, FloatArray]:
    # Two readings at one instant are a retransmission or a skewed clock: neither is more
    # trustworthy, so they are averaged.
    if np.all(np.diff(t) > 0):
        return t, x
    order = np.argsort(t, kind="stable")
    t, x = t[order], x[order]
    uniq, inverse, counts = np.unique(t, return_inverse=True, return_counts=True)
    if len(uniq) == len(t):
        return t, x
    notes.append(f"{len(t) - len(uniq)} readings with a duplicated timestamp averaged")
    return uniq.astype(np.int64), np.bincount(inverse, weights=x) / counts


def _until(
    t: IntArray, s: FloatArray, now_ms: int | None, notes: list[str]
) -> tuple[IntArray, FloatArray]:
    # Replaying "the level as of now_ms" must not peek at later readings.
    if now_ms is None or not len(t) or t[-1] <= now_ms:
        return t, s
    keep = t <= now_ms
    notes.append(f"{int((~keep).sum())} readings after now_ms ignored")
    return t[keep], s[keep]


def _check_stuck(s: FloatArray, notes: list[str], min_run: int = 12) -> None:
    # A stuck sensor reports zero velocity, which reads as "the slope has stopped": say so.
    if len(s) >= 3 and np.ptp(s) == 0.0:
        notes.append("sensor repeats one value — possibly dead")
        return
    changed = np.flatnonzero(s != s[-1]) if len(s) else np.zeros(0, np.intp)
    run = len(s) - (int(changed[-1]) + 1 if len(changed) else 0)
    if run >= min_run:
        notes.append(f"the last {run} readings repeat one value — sensor may be stuck")


# -- spikes --------------------------------------------------------------------------------


def hampel(x: FloatArray, k: float, window: int = 7, min_dev: float = 0.0) -> npt.NDArray[np.bool_]:
    """True for readings further than ``k`` robust standard deviations (and ``min_dev``)
    from the median of their window — centred, and the first or last full window at the ends,
    so the newest reading is judged against the readings just before it.

    The robust σ is the larger of the window's scaled MAD and the whole record's noise (the
    scaled MAD of the first differences / √2), so a window that happens to be quiet does not
    make ordinary noise look like a spike. A genuine jump survives once it is held by more
    than half a window of readings."""
    w = max(int(window), 3) | 1
    n = len(x)
    if not k > 0 or n < w:
        return np.zeros(n, dtype=bool)
    windows = np.lib.stride_tricks.sliding_window_view(x, w)
    # The middle of each sorted row: w is odd. Sorting short rows beats np.median's partition.
    med = np.sort(windows, axis=1)[:, w // 2]
    mad = 1.4826 * np.sort(np.abs(windows - med[:, None]), axis=1)[:, w // 2]
    dx = np.diff(x)
    noise = 1.4826 * float(np.median(np.abs(dx - np.median(dx)))) / math.sqrt(2)
    at = np.clip(np.arange(n) - w // 2, 0, n - w)
    limit = np.maximum(k * np.maximum(mad[at], noise), min_dev)
    return np.asarray(np.abs(x - med[at]) > limit, dtype=bool)


# -- gaps, resampling, smoothing -------------------------------------------------------------


@dataclass
class _Series:
    t: FloatArray  # days since t0
    s: FloatArray
    vt: FloatArray
    v: FloatArray
    at: FloatArray
    a: FloatArray
    last_segment: slice  # the velocities of the newest segment


def _step_days(days: FloatArray, config: DisplacementConfig, notes: list[str]) -> float:
    if config.step_h is not None and math.isfinite(config.step_h) and config.step_h > 0:
        return config.step_h / 24.0
    if config.step_h is not None:
        notes.append(f"step_h {config.step_h} invalid; the median interval is used")
    return _median_interval(days)


def _median_interval(days: FloatArray) -> float:
    return float(np.median(np.diff(days))) if len(days) > 1 else 0.0


def _segment_series(
    days: FloatArray, s: FloatArray, step: float, config: DisplacementConfig, notes: list[str]
) -> _Series:
    max_gap = max(config.max_gap_h / 24.0, 2.0 * step)
    breaks = np.flatnonzero(np.diff(days) > max_gap) + 1
    if len(breaks):
        notes.append(
            f"{len(breaks)} gap(s) longer than {max_gap * 24:g} h; not interpolated or "
            "differentiated across"
        )
    edges = [0, *breaks.tolist(), len(days)]
    parts = [_segment(days[a:b], s[a:b], step, config, notes) for a, b in itertools.pairwise(edges)]
    n_last = len(parts[-1][2])
    total_v = sum(len(p[2]) for p in parts)
    t, s, vt, v, at, a = (np.concatenate([p[i] for p in parts]) for i in range(6))
    return _Series(t, s, vt, v, at, a, last_segment=slice(total_v - n_last, total_v))


def _segment(
    t: FloatArray, s: FloatArray, step: float, config: DisplacementConfig, notes: list[str]
) -> tuple[FloatArray, FloatArray, FloatArray, FloatArray, FloatArray, FloatArray]:
    if config.resample and step > 0:
        t, s = _resample(t, s, step, notes)
    s = smooth(s, config.smoothing, config.window, config.polyorder, notes)
    vt, v = _derivative(t, s)
    at, a = _derivative(vt, v)
    return t, s, vt, v, at, a


def _resample(
    t: FloatArray, s: FloatArray, step: float, notes: list[str]
) -> tuple[FloatArray, FloatArray]:
    if len(t) < 2:
        return t, s
    if step >= 1.5 * _median_interval(t):
        return _bin_means(t, s, step)
    # A median step far below the typical spacing (a burst of readings in an otherwise sparse
    # record) would blow the grid up; such a segment is used as sampled.
    span, cap = float(t[-1] - t[0]), 4 * len(t) + 16
    if span / cap > step:
        _note_once(notes, "sampling too irregular to resample; readings used as sampled")
        return t, s
    n = math.floor(span / step * (1 + 1e-12)) + 1
    grid = t[-1] - step * np.arange(n - 1, -1, -1, dtype=np.float64)
    return grid, np.interp(grid, t, s)


def _bin_means(t: FloatArray, s: FloatArray, step: float) -> tuple[FloatArray, FloatArray]:
    """Downsampling by averaging each bin (t_last − (k+1)·step, t_last − k·step], stamped at
    the mean time of its readings. Picking one reading per bin instead would keep all of the
    sensor noise and alias the daily thermal cycle into the trend."""
    k = np.floor((t[-1] - t) / step)
    _, bins, counts = np.unique(-k, return_inverse=True, return_counts=True)  # oldest first
    return np.bincount(bins, weights=t) / counts, np.bincount(bins, weights=s) / counts


def smooth(
    s: FloatArray, method: str, window: int, polyorder: int, notes: list[str] | None = None
) -> FloatArray:
    """Smooth a regularly sampled series; ``notes`` collects fall-backs."""
    notes = notes if notes is not None else []
    if method == "none" or len(s) < 3:
        return s.copy()
    if method == "savgol":
        w = window + 1 if window % 2 == 0 else window
        if w <= len(s) and 0 <= polyorder < w:
            return np.asarray(savgol_filter(s, w, polyorder, mode="interp"), dtype=np.float64)
        _note_once(notes, "too few points for Savitzky–Golay; moving average used")
    elif method != "moving_average":
        _note_once(notes, f"unknown smoothing {method!r}; moving average used")
    return moving_average(s, window)


def moving_average(x: FloatArray, window: int) -> FloatArray:
    """Centred moving average; near the ends the window shrinks symmetrically (an even window
    is widened by one to stay centred), so a linear trend passes through unbiased."""
    n = len(x)
    h = max(int(window), 1) // 2
    if h == 0 or n < 3:
        return x.copy()
    i = np.arange(n)
    half = np.minimum(h, np.minimum(i, n - 1 - i))
    c = np.concatenate(([0.0], np.cumsum(x)))
    return np.asarray((c[i + half + 1] - c[i - half]) / (2 * half + 1), dtype=np.float64)


def _derivative(t: FloatArray, y: FloatArray) -> tuple[FloatArray, FloatArray]:
    # Stamped at the interval midpoint: a central difference, exact for a quadratic.
    if len(t) < 2:
        return np.zeros(0), np.zeros(0)
    return (t[:-1] + t[1:]) / 2.0, np.diff(y) / np.diff(t)


# -- levels --------------------------------------------------------------------------------


def estimate_v_uniform(
    vt_days: FloatArray, v: FloatArray, uniform_days: float, min_points: int = 3
) -> tuple[float | None, str | None]:
    """Steady-creep velocity from the record; (None, None) when too few velocities."""
    v_ok = np.isfinite(v)
    vt_days, v = vt_days[v_ok], v[v_ok]
    if len(v) < max(min_points, 1):
        return None, None
    span = float(vt_days[-1] - vt_days[0])
    if uniform_days > 0 and span >= 2 * uniform_days:
        early = v[vt_days - vt_days[0] <= uniform_days]
        if len(early) >= min_points:
            return float(np.median(early)), "early-window"
    low = np.sort(v)[: max((len(v) + 1) // 2, 1)]
    return float(np.median(low)), "lower-half"


def _level_ranks(
    angle: FloatArray,
    thresholds: tuple[float, float, float],
    blue_band: float,
    blue_above: float = 0.0,
) -> npt.NDArray[np.int64]:
    yellow, orange, red = thresholds
    a = np.where(np.isfinite(angle), angle, -np.inf)
    ranks = np.zeros(len(a), dtype=np.int64)
    ranks[a >= yellow - blue_band - ANGLE_EPS] = 1
    ranks[a > yellow + max(blue_above, 0.0) + ANGLE_EPS] = 2
    ranks[a >= orange - ANGLE_EPS] = 3
    ranks[a >= red - ANGLE_EPS] = 4
    return ranks


def _persist_ranks(ranks: npt.NDArray[np.int64], k: int, n: int) -> npt.NDArray[np.int64]:
    n = max(int(n), 1)
    k = min(max(int(k), 1), n)
    out = np.zeros(len(ranks), dtype=np.int64)
    i = np.arange(len(ranks))
    lo = np.maximum(i + 1 - n, 0)
    # Ascending order: a higher level overwrites a lower one wherever it also persisted.
    for level in range(1, len(LEVELS)):
        c = np.concatenate(([0], np.cumsum(ranks >= level)))
        out[(c[i + 1] - c[lo]) >= k] = level
    return out


# -- inverse velocity ----------------------------------------------------------------------


def _accelerating_start(v: FloatArray) -> int:
    # Detected on a 3-point moving average so one noisy sample does not cut the run short.
    vs = moving_average(v, 3)
    stalls = np.flatnonzero(~(np.diff(vs) > 0))
    return int(stalls[-1]) + 1 if len(stalls) else 0


def _inverse_velocity_fit(
    t_ms: npt.NDArray[Any] | Sequence[int],
    v_mm_d: npt.NDArray[Any] | Sequence[float],
    now_ms: int | None,
    min_points: int,
    window_h: float | None,
    notes: list[str],
) -> InverseVelocityFit | None:
    t = np.asarray(t_ms, dtype=np.float64).ravel()
    v = np.asarray(v_mm_d, dtype=np.float64).ravel()
    if len(t) != len(v) or len(t) == 0:
        notes.append("no velocities for the inverse-velocity fit")
        return None
    if window_h is not None and math.isfinite(window_h) and window_h > 0:
        start = int(np.searchsorted(t, t[-1] - window_h * MS_PER_H, side="left"))
    else:
        start = _accelerating_start(v)
    tw, vw = t[start:], v[start:]
    with np.errstate(divide="ignore", over="ignore"):
        inv = 1.0 / vw
    use = np.isfinite(vw) & (vw > 0) & np.isfinite(inv) & np.isfinite(tw)
    if int(use.sum()) < max(min_points, 2):
        notes.append(
            f"inverse-velocity fit needs {max(min_points, 2)} accelerating points with v > 0; "
            f"{int(use.sum())} available"
        )
        return None
    return _fit_line(tw[use], inv[use], now_ms, notes)


def _fit_line(
    t: FloatArray, inv: FloatArray, now_ms: int | None, notes: list[str]
) -> InverseVelocityFit:
    t0 = float(t[0])
    x = (t - t0) / MS_PER_DAY  # days since the window start keeps the fit well conditioned
    xm, ym = float(x.mean()), float(inv.mean())
    sxx = float(((x - xm) ** 2).sum())
    a = float(((x - xm) * (inv - ym)).sum() / sxx) if sxx > 0 else 0.0
    b = ym - a * xm
    sst = float(((inv - ym) ** 2).sum())
    ssr = float(((inv - (a * x + b)) ** 2).sum())
    r2 = 1.0 - ssr / sst if sst > 0 else 0.0
    now = float(now_ms) if now_ms is not None else float(t[-1])
    failure_ms, lead_h = _failure_time(a, b, t0, now, notes)
    return InverseVelocityFit(
        a=a,
        b=b,
        r2=r2,
        points=len(x),
        start_ms=round(t0),
        end_ms=round(float(t[-1])),
        failure_ms=failure_ms,
        lead_h=lead_h,
    )


def _failure_time(
    a: float, b: float, t0_ms: float, now_ms: float, notes: list[str]
) -> tuple[int | None, float | None]:
    if not a < 0:
        notes.append("inverse velocity is not falling (a ≥ 0): no failure time predicted")
        return None, None
    tf_days = -b / a
    if not (math.isfinite(tf_days) and abs(tf_days) <= MAX_FORECAST_DAYS):
        notes.append("predicted failure time is beyond the forecast horizon")
        return None, None
    failure_ms = round(t0_ms + tf_days * MS_PER_DAY)
    lead_h = (failure_ms - now_ms) / MS_PER_H
    if lead_h < 0:
        notes.append("predicted failure time has already passed")
    return failure_ms, lead_h


# -- assembly ------------------------------------------------------------------------------


def _assemble(
    ser: _Series, t0: int, config: DisplacementConfig, now: int | None, notes: list[str]
) -> DisplacementResult:
    v_uniform, source = _v_uniform(ser, config, notes)
    angle = (
        tangent_angle(ser.v, v_uniform) if v_uniform is not None else np.full(len(ser.v), np.nan)
    )
    if v_uniform is not None:
        _check_noise(ser.v, v_uniform, notes)
    ranks = _level_ranks(angle, config.thresholds, config.blue_band, config.blue_above)
    persisted = _persist_ranks(ranks, config.persist_k, config.persist_n)
    vt_ms = _to_ms(ser.vt, t0)
    level, since = _current(persisted, vt_ms)
    lseg = ser.last_segment
    fit = (
        _inverse_velocity_fit(
            vt_ms[lseg], ser.v[lseg], now, config.min_fit_points, config.fit_window_h, notes
        )
        if len(ser.v[lseg])
        else None
    )
    if now is not None and len(vt_ms) and now - int(vt_ms[-1]) > config.max_gap_h * MS_PER_H:
        notes.append("no velocity within max_gap_h of now: the level describes older readings")
    return DisplacementResult(
        t_ms=_to_ms(ser.t, t0),
        s_mm=ser.s,
        v_t_ms=vt_ms,
        v_mm_d=ser.v,
        a_t_ms=_to_ms(ser.at, t0),
        a_mm_d2=ser.a,
        v_uniform=v_uniform,
        angle_deg=angle,
        levels=_names(ranks),
        level=level,
        level_since_ms=since,
        fit=fit,
        notes=notes,
        persisted=_names(persisted),
        level_held_h=(
            max((now - since) / MS_PER_H, 0.0) if since is not None and now is not None else None
        ),
        angle_now_deg=_angle_now(angle, config.persist_n),
        now_ms=now,
        v_uniform_source=source,
    )


def _v_uniform(
    ser: _Series, config: DisplacementConfig, notes: list[str]
) -> tuple[float | None, str | None]:
    if config.v_uniform is not None:
        vu: float | None = float(config.v_uniform)
        source: str | None = "config"
    else:
        vu, source = estimate_v_uniform(
            ser.vt, ser.v, config.uniform_days, config.min_uniform_points
        )
    if vu is None:
        notes.append("too few velocities to estimate v_uniform: tangent angle undefined")
        return None, None
    if not (math.isfinite(vu) and vu > 0):
        notes.append(f"v_uniform {vu:g} mm/day is not positive: tangent angle undefined")
        return None, None
    return vu, source


def _check_noise(v: FloatArray, v_uniform: float, notes: list[str]) -> None:
    # Differencing readings an hour apart turns ±0.5 mm of GNSS noise into ±10 mm/day, which
    # swamps a creep of a fraction of a mm/day and sends the angle to ±90° at random.
    dv = np.diff(v[np.isfinite(v)])
    if len(dv) < 4:
        return
    noise = 1.4826 * float(np.median(np.abs(dv - np.median(dv)))) / math.sqrt(2)
    if noise > v_uniform:
        notes.append(
            f"velocity noise ±{noise:.3g} mm/day exceeds v_uniform {v_uniform:.3g} mm/day: "
            "the angle is mostly noise; use a longer step (step_h=24) or smoothing window"
        )


def _current(persisted: npt.NDArray[np.int64], vt_ms: IntArray) -> tuple[str, int | None]:
    if len(persisted) == 0:
        return "none", None
    current = int(persisted[-1])
    other = np.flatnonzero(persisted != current)
    start = int(other[-1]) + 1 if len(other) else 0
    return LEVELS[current], int(vt_ms[start])


def _angle_now(angle: FloatArray, n: int) -> float | None:
    # The median of the last n angles: consistent with the k-of-n persisted level and not
    # thrown by one spike.
    recent = angle[np.isfinite(angle)][-max(n, 1) :]
    return float(np.median(recent)) if len(recent) else None


def _empty(t: IntArray, s: FloatArray, notes: list[str], now: int | None) -> DisplacementResult:
    none_i, none_f = np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.float64)
    return DisplacementResult(
        t_ms=t,
        s_mm=s,
        v_t_ms=none_i,
        v_mm_d=none_f,
        a_t_ms=none_i,
        a_mm_d2=none_f,
        v_uniform=None,
        angle_deg=none_f,
        levels=[],
        level="none",
        level_since_ms=None,
        fit=None,
        notes=notes,
        now_ms=now,
    )


# -- helpers -------------------------------------------------------------------------------


def _names(ranks: npt.NDArray[np.int64]) -> list[str]:
    names: list[str] = _LEVEL_OBJECTS[ranks].tolist()
    return names


def _to_ms(days: FloatArray, t0: int) -> IntArray:
    return t0 + np.rint(days * MS_PER_DAY).astype(np.int64)


def _note_once(notes: list[str], note: str) -> None:
    if note not in notes:
        notes.append(note)


def _thin(n: int, max_points: int | None) -> npt.NDArray[np.intp]:
    if max_points is None or n <= max_points:
        return np.arange(n)
    if max_points <= 1:
        return np.array([n - 1]) if n and max_points == 1 else np.zeros(0, dtype=np.intp)
    return np.unique(np.rint(np.linspace(0, n - 1, max_points)).astype(np.intp))


def _json_float(x: float | None) -> float | None:
    return float(x) if x is not None and math.isfinite(x) else None


def _json_list(a: FloatArray) -> list[float | None]:
    return [float(x) if math.isfinite(x) else None for x in a.tolist()]
