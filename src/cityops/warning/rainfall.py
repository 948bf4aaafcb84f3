"""Rainfall analytics for one rain gauge: trailing totals, effective antecedent rainfall, rain
events and their position against intensity–duration (I–D) landslide thresholds.

Input
-----
CityOps gauges report ``rain_mm``, the rain of the interval that *ends* at the timestamp
(15 minutes by default): an amount stamped t covers (t − Δ, t], Δ being ``interval_min`` or,
by default, the median spacing. A cumulative counter is accepted too (``cumulative=True``):
it is differenced, and a drop is taken as a counter reset (the new reading is what fell since
the reset). Missing, negative and implausibly large amounts (> ``max_interval_mm``, the
gauge's range) are rejected with a note; duplicated timestamps are averaged — a
retransmission, not twice the rain.

Totals
------
Sum of the amounts stamped in (now − W, now] for W = 1 h, 24 h, 72 h. ``None`` when the gauge
sent nothing in the window: a gauge reports zeros when it is dry, so silence is "unknown", not
"dry". A window with fewer reports than expected is noted as possibly underestimated.

Effective antecedent rainfall
-----------------------------
R_eff = Σ_{i=0..N} Kⁱ · R_i, with R_i the rain of day i before now (R_0 = the last 24 h) —
the antecedent daily rainfall model of Crozier & Eyles (1980) / Crozier (1986), used by
Glade et al. (2000) and throughout Chinese practice (前期有效降雨量). K = 0.84 is the usual
decay constant; N = 14 days because 0.84¹⁴ ≈ 0.09: rain two weeks old weighs less than a tenth
of today's, and older rain is mostly drained.

Rain events
-----------
Wet intervals separated by a dry spell of at least ``dry_gap_h`` (default 6 h) belong to
different events; an event with less than ``min_event_mm`` (default 1 mm) is dropped. An
event runs from the start of its first wet interval to the end of its last, so its duration D
is at least one interval. Mean intensity I = total / D (mm/h); the peak 1-hour intensity is
the largest rain in any trailing hour (for gauges reporting hourly or coarser, the largest
interval amount divided by the interval). A gauge outage inside an event counts as dry.

Intensity–duration thresholds, I = α·D^β (I mm/h, D h):

=================================  ======  ======  ============================
threshold                          α       β       validity
=================================  ======  ======  ============================
Caine (1980), global               14.82   −0.39   0.167 h < D < 500 h
Guzzetti et al. (2008), global     2.20    −0.44   0.1 h < D < 1000 h
=================================  ======  ======  ============================

An event is "above" a threshold when I ≥ α·D^β; the ratio I / (α·D^β) says by how much.
Coefficients are configurable per district (a local threshold is usually far higher than the
global minimum curves). The *current* event is the last one if it ended no more than
``current_event_h`` (default 24 h) before now: slopes typically fail during the rain or within
hours to a day after it.

References
----------
- Caine N. (1980). The rainfall intensity–duration control of shallow landslides and debris
  flows. Geografiska Annaler A 62(1/2): 23–27.
- Guzzetti F., Peruccacci S., Rossi M., Stark C. P. (2008). The rainfall intensity–duration
  control of shallow landslides and debris flows: an update. Landslides 5(1): 3–17.
- Crozier M. J. (1986). Landslides: Causes, Consequences and Environment. Croom Helm.
- Glade T., Crozier M., Smith P. (2000). Applying probability determination to refine
  landslide-triggering rainfall thresholds using an empirical "Antecedent Daily Rainfall
  Model". Pure and Applied Geophysics 157: 1059–1079.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, overload

import numpy as np
import numpy.typing as npt

from cityops.warning.displacement import ArrayLike, FloatArray, IntArray, clean_series

MS_PER_H = 3_600_000
MS_PER_DAY = 86_400_000
DEFAULT_INTERVAL_MIN = 15.0

DEFAULT_THRESHOLDS: dict[str, tuple[float, float]] = {
    "caine": (14.82, -0.39),
    "guzzetti": (2.20, -0.44),
}
# Where the curves are drawn on the log–log chart (the span of Guzzetti et al.'s data).
CURVE_DURATIONS_H = np.logspace(-1, 3, 30)


def _default_thresholds() -> dict[str, tuple[float, float]]:
    return dict(DEFAULT_THRESHOLDS)


@dataclass(frozen=True)
class RainfallConfig:
    interval_min: float | None = None  # None → median spacing of the reports
    windows_h: tuple[float, ...] = (1.0, 24.0, 72.0)
    k: float = 0.84  # antecedent decay constant
    antecedent_days: int = 14  # N: days 0..N enter R_eff
    dry_gap_h: float = 6.0
    min_event_mm: float = 1.0
    thresholds: dict[str, tuple[float, float]] = field(default_factory=_default_thresholds)
    current_event_h: float = 24.0
    max_interval_mm: float = 300.0  # the gauge's range in one interval


@dataclass
class RainEvent:
    start_ms: int  # start of the first wet interval
    end_ms: int  # end of the last wet interval
    duration_h: float
    total_mm: float
    intensity_mm_h: float  # total / duration
    peak_1h_mm: float
    ratio: dict[str, float]  # I / I_threshold(D) per threshold
    above: dict[str, bool]

    def as_dict(self) -> dict[str, Any]:
        return {
            "start_ms": self.start_ms,
            "end_ms": self.end_ms,
            "duration_h": self.duration_h,
            "total_mm": self.total_mm,
            "intensity_mm_h": self.intensity_mm_h,
            "peak_1h_mm": self.peak_1h_mm,
            "ratio": {k: _json_float(v) for k, v in self.ratio.items()},
            "above": dict(self.above),
        }


@dataclass
class RainfallResult:
    now_ms: int | None
    totals_mm: dict[str, float | None]  # "1h", "24h", "72h" → mm, None when no reports
    daily_mm: list[float]  # R_0 … R_N
    antecedent_mm: float | None  # effective antecedent rainfall R_eff
    events: list[RainEvent]
    current_event: RainEvent | None  # the last event if it ended within current_event_h
    above: dict[str, bool]  # current event at or above each threshold
    notes: list[str]
    last_event: RainEvent | None = None
    interval_min: float | None = None
    thresholds: dict[str, tuple[float, float]] = field(default_factory=_default_thresholds)

    @property
    def total_1h(self) -> float | None:
        return self.totals_mm.get("1h")

    @property
    def total_24h(self) -> float | None:
        return self.totals_mm.get("24h")

    @property
    def total_72h(self) -> float | None:
        return self.totals_mm.get("72h")

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready, with both threshold curves for a log–log I–D chart."""
        return {
            "now_ms": self.now_ms,
            "interval_min": self.interval_min,
            "totals_mm": dict(self.totals_mm),
            "daily_mm": list(self.daily_mm),
            "antecedent_mm": self.antecedent_mm,
            "events": [e.as_dict() for e in self.events],
            "current_event": self.current_event.as_dict() if self.current_event else None,
            "last_event": self.last_event.as_dict() if self.last_event else None,
            "above": dict(self.above),
            "threshold_curves": threshold_curves(self.thresholds),
            "notes": list(self.notes),
        }


# -- public functions ----------------------------------------------------------------------


@overload
def threshold_intensity(
    name_or_coeffs: str | tuple[float, float],
    duration_h: float,
    thresholds: Mapping[str, tuple[float, float]] | None = None,
) -> float: ...


@overload
def threshold_intensity(
    name_or_coeffs: str | tuple[float, float],
    duration_h: npt.NDArray[Any],
    thresholds: Mapping[str, tuple[float, float]] | None = None,
) -> FloatArray: ...


def threshold_intensity(
    name_or_coeffs: str | tuple[float, float],
    duration_h: float | npt.NDArray[Any],
    thresholds: Mapping[str, tuple[float, float]] | None = None,
) -> float | FloatArray:
    """I = α·D^β in mm/h for a named threshold (``thresholds`` or the defaults) or explicit
    (α, β); NaN for D ≤ 0. An unknown name is a programming error and raises KeyError."""
    if isinstance(name_or_coeffs, str):
        alpha, beta = (thresholds or DEFAULT_THRESHOLDS)[name_or_coeffs]
    else:
        alpha, beta = name_or_coeffs
    d = np.asarray(duration_h, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        out = np.where(d > 0, alpha * np.power(np.where(d > 0, d, 1.0), beta), np.nan)
    return float(out) if out.ndim == 0 else out


def threshold_curves(
    thresholds: Mapping[str, tuple[float, float]] | None = None,
) -> dict[str, dict[str, list[float]]]:
    """Points (D, I) of each threshold for a log–log chart, D from 0.1 h to 1000 h."""
    return {
        name: {
            "duration_h": CURVE_DURATIONS_H.tolist(),
            "intensity_mm_h": threshold_intensity(coeffs, CURVE_DURATIONS_H).tolist(),
        }
        for name, coeffs in (thresholds or DEFAULT_THRESHOLDS).items()
    }


def analyse(
    t_ms: ArrayLike,
    mm: ArrayLike,
    config: RainfallConfig = RainfallConfig(),
    now_ms: int | None = None,
    cumulative: bool = False,
) -> RainfallResult:
    """Analyse one gauge. Never raises on bad data; what cannot be computed is None, with the
    reason in ``notes``."""
    t, x, notes = _clean(t_ms, mm, config, cumulative)
    now = int(now_ms) if now_ms is not None else (int(t[-1]) if len(t) else None)
    if now is None:
        notes.append("no rainfall reports")
        return _empty(config, notes)
    if len(t) and t[-1] > now:
        notes.append(f"{int((t > now).sum())} reports after now_ms ignored")
        keep = t <= now
        t, x = t[keep], x[keep]
    interval_ms = _interval_ms(t, config, notes)
    cum = np.concatenate(([0.0], np.cumsum(x)))
    totals = {
        f"{w:g}h": _window_total(t, cum, now, w, interval_ms, notes) for w in config.windows_h
    }
    daily, antecedent = _antecedent(t, x, now, config, notes)
    events = _events(t, x, cum, interval_ms, config)
    last = events[-1] if events else None
    current = last if last and now - last.end_ms <= config.current_event_h * MS_PER_H else None
    return RainfallResult(
        now_ms=now,
        totals_mm=totals,
        daily_mm=daily,
        antecedent_mm=antecedent,
        events=events,
        current_event=current,
        above={name: bool(current and current.above[name]) for name in config.thresholds},
        notes=notes,
        last_event=last,
        interval_min=interval_ms / 60_000,
        thresholds=dict(config.thresholds),
    )


# -- cleaning ------------------------------------------------------------------------------


def _clean(
    t_ms: ArrayLike, mm: ArrayLike, config: RainfallConfig, cumulative: bool
) -> tuple[IntArray, FloatArray, list[str]]:
    if not cumulative:
        return clean_series(t_ms, mm, lo=0.0, hi=config.max_interval_mm)
    t, c, notes = clean_series(t_ms, mm, lo=0.0, hi=math.inf)
    if len(t) < 2:
        notes.append("a cumulative counter needs two readings for one amount")
        return t[:0], c[:0], notes
    inc = np.diff(c)
    resets = inc < 0
    if resets.any():
        notes.append(f"{int(resets.sum())} counter reset(s): rain since each reset counted")
    inc = np.where(resets, c[1:], inc)
    # An increment beyond the gauge's range is a glitch of the counter, not rain.
    bad = inc > config.max_interval_mm
    if bad.any():
        notes.append(f"{int(bad.sum())} increments above {config.max_interval_mm:g} mm rejected")
    return t[1:][~bad], inc[~bad], notes


def _interval_ms(t: IntArray, config: RainfallConfig, notes: list[str]) -> float:
    if config.interval_min is not None and config.interval_min > 0:
        return config.interval_min * 60_000
    if len(t) < 2:
        notes.append(f"interval unknown; {DEFAULT_INTERVAL_MIN:g} min assumed")
        return DEFAULT_INTERVAL_MIN * 60_000
    return float(np.median(np.diff(t)))


# -- totals --------------------------------------------------------------------------------


def _window_total(
    t: IntArray, cum: FloatArray, now: int, hours: float, interval_ms: float, notes: list[str]
) -> float | None:
    lo = int(np.searchsorted(t, now - hours * MS_PER_H, side="right"))
    hi = int(np.searchsorted(t, now, side="right"))
    if hi == lo:
        return None
    expected = hours * MS_PER_H / interval_ms
    if expected >= 1 and hi - lo < 0.9 * expected:
        notes.append(
            f"{hours:g} h total from {hi - lo} of {expected:.0f} expected reports; "
            "may be underestimated"
        )
    return float(cum[hi] - cum[lo])


def _antecedent(
    t: IntArray, x: FloatArray, now: int, config: RainfallConfig, notes: list[str]
) -> tuple[list[float], float | None]:
    n_days = max(int(config.antecedent_days), 0) + 1
    day = (now - t) // MS_PER_DAY  # day i covers (now − (i+1)·24 h, now − i·24 h]
    keep = (day >= 0) & (day < n_days)
    if not keep.any():
        return [0.0] * n_days, None
    daily = np.bincount(day[keep], weights=x[keep], minlength=n_days)[:n_days]
    covered_days = (now - int(t[0])) / MS_PER_DAY
    if covered_days < n_days:
        notes.append(f"antecedent rainfall from {covered_days:.1f} of {n_days} days of record")
    weights = config.k ** np.arange(n_days, dtype=np.float64)
    return daily.tolist(), float(weights @ daily)


# -- events --------------------------------------------------------------------------------


def _events(
    t: IntArray, x: FloatArray, cum: FloatArray, interval_ms: float, config: RainfallConfig
) -> list[RainEvent]:
    wet = np.flatnonzero(x > 0)
    if len(wet) == 0:
        return []
    tw = t[wet]
    dry = (tw[1:] - interval_ms) - tw[:-1]  # from the end of one wet interval to the next start
    first = np.concatenate(([0], np.flatnonzero(dry >= config.dry_gap_h * MS_PER_H) + 1))
    last = np.concatenate((first[1:], [len(wet)])) - 1
    totals = np.add.reduceat(x[wet], first)
    peaks = np.maximum.reduceat(_peak_1h(t, cum, tw, x[wet], interval_ms), first)
    starts = tw[first] - interval_ms
    ends = tw[last].astype(np.float64)
    keep = totals >= config.min_event_mm
    return [
        _event(float(s), float(e), float(total), float(peak), config.thresholds)
        for s, e, total, peak in zip(
            starts[keep], ends[keep], totals[keep], peaks[keep], strict=True
        )
    ]


def _peak_1h(
    t: IntArray, cum: FloatArray, tw: IntArray, xw: FloatArray, interval_ms: float
) -> FloatArray:
    if interval_ms >= MS_PER_H:
        # Coarser reports cannot resolve an hour: the interval's mean rate is the best bound.
        return np.asarray(xw / (interval_ms / MS_PER_H), dtype=np.float64)
    lo = np.searchsorted(t, tw - MS_PER_H, side="right")
    hi = np.searchsorted(t, tw, side="right")
    return np.asarray(cum[hi] - cum[lo], dtype=np.float64)


def _event(
    start: float,
    end: float,
    total: float,
    peak: float,
    thresholds: Mapping[str, tuple[float, float]],
) -> RainEvent:
    duration_h = (end - start) / MS_PER_H
    intensity = total / duration_h
    ratio = {
        name: intensity / threshold_intensity(coeffs, duration_h)
        for name, coeffs in thresholds.items()
    }
    return RainEvent(
        start_ms=round(start),
        end_ms=round(end),
        duration_h=duration_h,
        total_mm=total,
        intensity_mm_h=intensity,
        peak_1h_mm=peak,
        ratio=ratio,
        above={name: bool(r >= 1.0) for name, r in ratio.items()},
    )


def _empty(config: RainfallConfig, notes: list[str]) -> RainfallResult:
    return RainfallResult(
        now_ms=None,
        totals_mm={f"{w:g}h": None for w in config.windows_h},
        daily_mm=[],
        antecedent_mm=None,
        events=[],
        current_event=None,
        above=dict.fromkeys(config.thresholds, False),
        notes=notes,
        thresholds=dict(config.thresholds),
    )


def _json_float(x: float) -> float | None:
    return x if math.isfinite(x) else None
