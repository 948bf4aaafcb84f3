"""Synthetic telemetry: realistic, seeded series for every device type, and the transports that
carry them (HTTP, MQTT, in process).

Every value is a pure function of (seed, device, instant): nothing carries over from one call
to the next, so a backfill, the live loop and a restarted demo agree with each other, and two
runs with one seed give the same readings byte for byte. Random draws come from a counter-based
hash (splitmix64) of the seed, the device and the time slot rather than from a stateful
generator.

What the series do (times are local, Asia/Shanghai):

- **weather** — rain cells drawn per day (more and heavier in summer, night rain favoured as
  in Chongqing): small fast convective cells with 5-minute bursts and wide slow stratiform
  ones. Each cell moves across the district, so gauges near each other see the same storm a
  little apart in time. Rain gauges report the rain of their interval; river gauges route the
  rain over their catchment (a gamma unit hydrograph, peak after 1.5–3 h); the Hanfeng lake
  follows its regulation curve (175 m in winter, 168.5 m in summer) and barely feels a storm.
- **slopes** (GNSS, crack meters, inclinometers, correlated per site) — slow creep plus
  acceleration episodes triggered by effective antecedent rainfall (Σ 0.85ⁱ·Rᵢ). Cumulative
  displacement is referenced to the start of the year (sites are re-surveyed every January)
  and episodes stop once a site's year has used its budget, so the totals stay below the
  100 mm alarm unless a scripted :class:`Acceleration` says otherwise.
- **fire** — hydrants hold about 0.3 MPa with a demand dip in the morning and evening and
  rare drops (a burst main, an opened hydrant) to 0.02–0.13 MPa; smoke detectors send a
  heartbeat every two hours, alarm about once per 200 detector-days and drain their battery
  over 18–24 months.
- **construction sites** — PM10 / PM2.5 and Leq with a daily cycle (work hours, lunch break,
  quiet nights, winter smog) and episodes of earthwork dust and heavy machinery.
- **city traffic** — parking bays with arrival/departure sessions by time of day (reported on
  change plus an hourly heartbeat), RFID reads with morning and evening peaks, buses
  shuttling along a line between a terminus and the district seat, stopping every ~500 m,
  06:00–23:00.
- **dropouts** — about one reading in a hundred is lost, and now and then a device falls
  silent for 15 minutes to 8 hours.

``Simulator(devices, seed).due(start, end)`` returns the readings scheduled in (start, end];
``readings(at)`` those of the second up to ``at``.
"""

from __future__ import annotations

import json
import logging
import math
import threading
import time
from bisect import bisect_left, bisect_right
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta, timezone
from functools import lru_cache
from statistics import NormalDist
from typing import TYPE_CHECKING, Any, Protocol

from cityops.demo.geometry import KM_PER_DEG_LAT, KM_PER_DEG_LON, SEAT

if TYPE_CHECKING:
    import requests
    from sqlalchemy.orm import Session, sessionmaker

    from cityops.telemetry.ingest import Policy

log = logging.getLogger("cityops.simulator")

DEFAULT_SEED = 20240712
CST = timezone(timedelta(hours=8))  # Asia/Shanghai (no daylight saving)
DAY_S = 86_400
LOCAL_OFFSET_S = 8 * 3600
# Reporting interval per device type, seconds (each below the type's offline_after_s).
INTERVAL_S = {
    "gnss": 600,
    "crack": 600,
    "inclinometer": 600,
    "rain": 900,
    "water_level": 600,
    "smoke": 7200,  # heartbeat; alarms are sent at once
    "hydrant": 300,
    "dust": 300,
    "noise": 300,
    "parking": 3600,  # heartbeat; arrivals and departures are sent at once
    "rfid": 300,
    "bus_gps": 30,
}
DEFAULT_INTERVAL_S = 600
SLOPE_TYPES = frozenset({"gnss", "crack", "inclinometer"})
LAKE_SITES = frozenset({"HFH"})  # water gauges on the Hanfeng lake (site code)
SKIP_P = 0.01  # one reading in a hundred is lost
OUTAGE_P = {"bus_gps": 1 / 30}  # chance per device-day of falling silent for a while
OUTAGE_P_DEFAULT = 1 / 80
BUS_HOURS = (6.0, 23.0)

_M64 = (1 << 64) - 1
_NORMAL = NormalDist()


# --- counter-based randomness ---------------------------------------------------------------


def _mix(x: int) -> int:
    """splitmix64's finaliser: a well-spread 64-bit hash of a 64-bit integer."""
    x = (x + 0x9E3779B97F4A7C15) & _M64
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & _M64
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & _M64
    return x ^ (x >> 31)


def _key(text: str) -> int:
    h = 1469598103934665603
    for byte in text.encode("utf-8"):  # FNV-1a, then mixed: stable across processes
        h = ((h ^ byte) * 1099511628211) & _M64
    return _mix(h)


class _Rng:
    """Uniform and normal draws addressed by integers: the same address, the same number."""

    def __init__(self, seed: int) -> None:
        self.seed = _mix(seed & _M64)

    def u(self, a: int, b: int = 0, c: int = 0) -> float:
        h = _mix(self.seed ^ _mix((a ^ _mix((b ^ _mix(c & _M64)) & _M64)) & _M64))
        return (h >> 11) * (1.0 / (1 << 53))

    def z(self, a: int, b: int = 0, c: int = 0) -> float:
        return _NORMAL.inv_cdf(min(max(self.u(a, b, c), 1e-12), 1 - 1e-12))


# Stream tags keep draws for different purposes apart.
(
    S_PHASE,
    S_SKIP,
    S_OUTAGE,
    S_WX,
    S_CELL,
    S_BURST,
    S_EPISODE,
    S_NOISE,
    S_NOISE2,
    S_PARAM,
    S_EVENT,
    S_PARK,
) = range(1, 13)


# --- time helpers ---------------------------------------------------------------------------


def _ms(moment: datetime) -> int:
    if moment.tzinfo is None:
        raise ValueError("naive datetime: pass a timezone-aware instant")
    return round(moment.timestamp() * 1000)


def iso(t_ms: int) -> str:
    """ISO 8601 in local time with its offset (what a device in Kaizhou would send)."""
    moment = datetime.fromtimestamp(t_ms / 1000, CST)
    return moment.isoformat(timespec="seconds" if t_ms % 1000 == 0 else "milliseconds")


def _local_day(t: float) -> int:
    return int((t + LOCAL_OFFSET_S) // DAY_S)


def _local_hour(t: float) -> float:
    return ((t + LOCAL_OFFSET_S) % DAY_S) / 3600.0


@lru_cache(maxsize=4096)
def _calendar(day: int) -> tuple[int, int]:
    """(day of year 0-based, the local day index of 1 January) of a local day index."""
    d = date(1970, 1, 1) + timedelta(days=day)
    jan1 = (date(d.year, 1, 1) - date(1970, 1, 1)).days
    return day - jan1, jan1


def _season(day: int) -> float:
    """0.3 in winter → 1.0 at the height of the rainy season (early July)."""
    doy = _calendar(day)[0]
    return 0.3 + 0.7 * math.exp(-(((doy - 188) / 62.0) ** 2))


def _bump(h: float, centre: float, width: float) -> float:
    d = min(abs(h - centre), 24 - abs(h - centre))
    return math.exp(-((d / width) ** 2))


def _traffic(h: float) -> float:
    """Relative road traffic by local hour: quiet nights, morning and evening peaks."""
    day = 0.55 if 7 <= h < 21 else 0.0
    return 0.06 + day + 0.5 * _bump(h, 8.0, 1.0) + 0.45 * _bump(h, 18.0, 1.3)


def _smoothstep(x: float) -> float:
    if x <= 0:
        return 0.0
    if x >= 1:
        return 1.0
    return x * x * (3 - 2 * x)


# --- devices and scenarios ------------------------------------------------------------------


@dataclass(frozen=True)
class SimDevice:
    code: str
    type: str
    lat: float
    lon: float
    site: str | None = None
    region_code: str = ""
    group: str | None = None  # the device group: a field gateway may publish for it

    @classmethod
    def of(cls, device: Any, group: str | None = None) -> SimDevice:
        """From a ``Device`` row (and its group's code) or a directory ``DeviceInfo``."""
        return cls(
            device.code,
            device.type_code,
            float(device.lat),
            float(device.lon),
            device.site,
            device.region_code,
            group if group is not None else getattr(device, "group", None),
        )


@dataclass(frozen=True)
class Storm:
    """A scripted rain cell: ``peak_mm_h`` at its centre, for ``hours`` from ``start``."""

    start: datetime
    hours: float
    peak_mm_h: float
    lat: float
    lon: float
    radius_km: float = 15.0


@dataclass(frozen=True)
class Acceleration:
    """A scripted acceleration of a slope: ``mm`` more displacement over ``hours``. ``site``
    is a site code (every slope device there) or a device code."""

    site: str
    start: datetime
    hours: float
    mm: float


@dataclass
class _Dev:
    code: str
    type: str
    lat: float
    lon: float
    x: float  # km east of the meridian, on an isotropic plane
    y: float  # km north of the equator
    site: str | None
    key: int
    interval_ms: int
    phase_ms: int
    slope: str  # the slope whose movement it follows (site, else its own code)
    p: dict[str, float] = field(default_factory=dict)  # per-device parameters


# --- weather --------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Cell:
    key: int
    t0: float  # start, epoch s
    dur: float  # s
    peak: float  # mm/h
    x: float  # centre at the peak, km
    y: float
    vx: float  # km/s
    vy: float
    radius: float  # km
    convective: bool

    @property
    def t_peak(self) -> float:
        return self.t0 + 0.3 * self.dur


def _shape(tau: float) -> float:
    """Storm intensity through its life (0..1 → 0..1): a quick rise, peak at 0.3, long tail."""
    if tau <= 0 or tau >= 1:
        return 0.0
    r = tau / 0.3
    return float(r**3 * math.exp(3 * (1 - r)))


SHAPE_INTEGRAL = sum(_shape((i + 0.5) / 400) for i in range(400)) / 400


class Weather:
    def __init__(self, seed: int, storms: Sequence[Storm] = ()) -> None:
        self.rng = _Rng(seed ^ 0x5EA7)
        self._cells: dict[int, list[_Cell]] = {}
        self.scripted = [
            _Cell(
                key=_key(f"storm{i}"),
                t0=s.start.timestamp(),
                dur=s.hours * 3600,
                peak=s.peak_mm_h,
                x=s.lon * KM_PER_DEG_LON,
                y=s.lat * KM_PER_DEG_LAT,
                vx=0.0,
                vy=0.0,
                radius=s.radius_km,
                convective=False,
            )
            for i, s in enumerate(storms)
        ]

    def cells(self, day: int) -> list[_Cell]:
        """The rain cells that start on a local day."""
        cells = self._cells.get(day)
        if cells is None:
            if len(self._cells) > 4000:
                self._cells.clear()
            cells = self._cells[day] = self._draw(day)
        return cells

    def _draw(self, day: int) -> list[_Cell]:
        u = self.rng.u
        s = _season(day)
        regime = u(S_WX, day // 4, 1)  # wet and dry spells of a few days
        if u(S_WX, day, 2) > 0.25 + 0.35 * s + 0.3 * (regime - 0.5):
            return []
        # Bounding box of Kaizhou on the plane, with a margin so cells can drift in.
        x0, x1 = 107.85 * KM_PER_DEG_LON, 108.98 * KM_PER_DEG_LON
        y0, y1 = 30.78 * KM_PER_DEG_LAT, 31.74 * KM_PER_DEG_LAT
        midnight = day * DAY_S - LOCAL_OFFSET_S
        out: list[_Cell] = []
        n_conv = int(u(S_WX, day, 3) * (1 + 5 * s))
        for i in range(n_conv):
            c = 10 + i
            # Chongqing's night rain: most storms start between 18:00 and 04:00.
            start_h = (
                18 + 10 * u(S_CELL, day, c * 16)
                if u(S_CELL, day, c * 16 + 1) < 0.6
                else (11 + 7 * u(S_CELL, day, c * 16 + 2))
            )
            dur = 3600 * (1.0 + 3.5 * u(S_CELL, day, c * 16 + 3) ** 1.5)
            heavy = -math.log(1 - u(S_CELL, day, c * 16 + 4))  # Exp(1): a heavy tail
            peak = (5 + 28 * heavy**1.5) * (0.45 + 0.75 * s)
            angle = math.radians(15 + 50 * (u(S_CELL, day, c * 16 + 5) - 0.5) * 2)
            speed = (15 + 25 * u(S_CELL, day, c * 16 + 6)) / 3600
            out.append(
                _Cell(
                    key=_mix(day * 131 + c),
                    t0=midnight + start_h * 3600,
                    dur=dur,
                    peak=peak,
                    x=x0 + (x1 - x0) * u(S_CELL, day, c * 16 + 7),
                    y=y0 + (y1 - y0) * u(S_CELL, day, c * 16 + 8),
                    vx=speed * math.cos(angle),
                    vy=speed * math.sin(angle),
                    radius=6 + 12 * u(S_CELL, day, c * 16 + 9),
                    convective=True,
                )
            )
        if u(S_WX, day, 5) < 0.4 * s**3:  # a severe thunderstorm: summer nights, slow
            c = 90
            angle = math.radians(20 + 60 * (u(S_CELL, day, c * 16 + 5) - 0.5))
            speed = (8 + 12 * u(S_CELL, day, c * 16 + 6)) / 3600
            out.append(
                _Cell(
                    key=_mix(day * 131 + c),
                    t0=midnight + 3600 * (19 + 9 * u(S_CELL, day, c * 16)),
                    dur=3600 * (1.2 + 1.5 * u(S_CELL, day, c * 16 + 3)),
                    peak=150 + 100 * u(S_CELL, day, c * 16 + 4),
                    x=x0 + (x1 - x0) * u(S_CELL, day, c * 16 + 7),
                    y=y0 + (y1 - y0) * u(S_CELL, day, c * 16 + 8),
                    vx=speed * math.cos(angle),
                    vy=speed * math.sin(angle),
                    radius=10 + 8 * u(S_CELL, day, c * 16 + 9),
                    convective=True,
                )
            )
        if u(S_WX, day, 4) < 0.75 - 0.35 * s:  # a wide, gentle rain; mostly outside summer
            c = 99
            angle = math.radians(30 + 60 * (u(S_CELL, day, c * 16 + 5) - 0.5))
            speed = (5 + 10 * u(S_CELL, day, c * 16 + 6)) / 3600
            out.append(
                _Cell(
                    key=_mix(day * 131 + c),
                    t0=midnight + 3600 * 24 * u(S_CELL, day, c * 16),
                    dur=3600 * (6 + 12 * u(S_CELL, day, c * 16 + 3)),
                    peak=0.8 + 5 * u(S_CELL, day, c * 16 + 4),
                    x=x0 + (x1 - x0) * u(S_CELL, day, c * 16 + 7),
                    y=y0 + (y1 - y0) * u(S_CELL, day, c * 16 + 8),
                    vx=speed * math.cos(angle),
                    vy=speed * math.sin(angle),
                    radius=40 + 50 * u(S_CELL, day, c * 16 + 9),
                    convective=False,
                )
            )
        return out

    def _active(self, t: float) -> Iterable[_Cell]:
        day = _local_day(t)
        yield from self.cells(day - 1)
        yield from self.cells(day)
        yield from self.scripted

    def intensity(self, x: float, y: float, t: float) -> float:
        """Rain rate (mm/h) at a point and instant."""
        total = 0.0
        for c in self._active(t):
            tau = (t - c.t0) / c.dur
            if not 0 < tau < 1:
                continue
            dt = t - c.t_peak
            dx, dy = x - (c.x + c.vx * dt), y - (c.y + c.vy * dt)
            d2 = (dx * dx + dy * dy) / (c.radius * c.radius)
            if d2 > 9:
                continue
            rate = c.peak * _shape(tau) * math.exp(-d2)
            if c.convective:  # 5-minute bursts, shared by every gauge under the cell
                rate *= 0.6 + 0.8 * self.rng.u(S_BURST, c.key, int(t // 300))
            total += rate
        return total

    def amount(self, x: float, y: float, t0: float, t1: float) -> float:
        """Rain (mm) in (t0, t1], from samples at most five minutes apart."""
        n = max(1, math.ceil((t1 - t0) / 300))
        step = (t1 - t0) / n
        return sum(self.intensity(x, y, t0 + (i + 0.5) * step) for i in range(n)) * step / 3600

    def daily(self, x: float, y: float, day: int) -> float:
        """Approximate rain (mm) at a point from the cells that start on a local day."""
        total = 0.0
        for c in self.cells(day):
            # Closest approach of the cell's track to the point.
            ax, ay = c.x + c.vx * (c.t0 - c.t_peak), c.y + c.vy * (c.t0 - c.t_peak)
            bx, by = c.vx * c.dur, c.vy * c.dur
            seg = bx * bx + by * by
            f = 0.0 if seg == 0 else min(1.0, max(0.0, ((x - ax) * bx + (y - ay) * by) / seg))
            dx, dy = x - (ax + f * bx), y - (ay + f * by)
            d2 = (dx * dx + dy * dy) / (c.radius * c.radius)
            # The track passes by in about 2·radius / speed; the cell's life may be shorter.
            speed = math.hypot(c.vx, c.vy)
            over = min(c.dur, 2 * c.radius / speed) if speed > 0 else c.dur
            total += c.peak * SHAPE_INTEGRAL * over / 3600 * math.exp(-d2)
        return total


# --- slopes ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Episode:
    t0: float
    dur: float
    mm: float


@dataclass(frozen=True)
class _SlopeProfile:
    creep_mm_day: float
    scale: float  # size of its episodes
    sensitivity: float  # how readily rain sets it moving
    budget_mm: float  # most it moves in a year without a scripted episode


LGW_PROFILE = _SlopeProfile(creep_mm_day=0.03, scale=1.35, sensitivity=1.4, budget_mm=75.0)


class Slopes:
    def __init__(self, seed: int, weather: Weather, scripted: Sequence[Acceleration] = ()):
        self.rng = _Rng(seed ^ 0x510E)
        self.weather = weather
        self.scripted = [
            (a.site, _Episode(a.start.timestamp(), a.hours * 3600, a.mm)) for a in scripted
        ]
        self._years: dict[tuple[str, int], list[_Episode]] = {}
        self._profiles: dict[str, _SlopeProfile] = {}

    def profile(self, slope: str) -> _SlopeProfile:
        prof = self._profiles.get(slope)
        if prof is None:
            k = _key(slope)
            u = self.rng.u
            prof = self._profiles[slope] = (
                LGW_PROFILE
                if slope == "LGW"
                else _SlopeProfile(
                    creep_mm_day=0.005 + 0.025 * u(S_PARAM, k, 1),
                    scale=0.6 + 0.6 * u(S_PARAM, k, 2),
                    sensitivity=0.6 + 0.8 * u(S_PARAM, k, 3),
                    budget_mm=60 + 15 * u(S_PARAM, k, 4),
                )
            )
        return prof

    def episodes(self, slope: str, x: float, y: float, jan1: int) -> list[_Episode]:
        """The slope's acceleration episodes in the year starting on local day ``jan1``,
        triggered by effective antecedent rainfall at the slope."""
        cached = self._years.get((slope, jan1))
        if cached is not None:
            return cached
        prof = self.profile(slope)
        k = _key(slope)
        u = self.rng.u
        days = _calendar(jan1 + 370)[1] - jan1  # 365 or 366
        used = prof.creep_mm_day * days
        antecedent = 0.0
        out: list[_Episode] = []
        for day in range(jan1 - 15, jan1 + days):
            antecedent = 0.85 * antecedent + self.weather.daily(x, y, day)
            if day < jan1:
                continue
            wet = min(1.0, max(0.0, (antecedent - 45) / 110))
            p = 0.0015 + 0.16 * prof.sensitivity * wet
            if u(S_EPISODE, k, day * 8) >= p:
                continue
            mm = prof.scale * (5 + 15 * u(S_EPISODE, k, day * 8 + 1))
            if used + mm > prof.budget_mm:
                continue
            used += mm
            start = (day * DAY_S - LOCAL_OFFSET_S) + 3600 * 24 * u(S_EPISODE, k, day * 8 + 2)
            out.append(_Episode(start, 3600 * (3 + 8 * u(S_EPISODE, k, day * 8 + 3)), mm))
        if len(self._years) > 20_000:
            self._years.clear()
        self._years[(slope, jan1)] = out
        return out

    def displacement(
        self, slope: str, x: float, y: float, t: float, device: str | None = None
    ) -> float:
        """How far (mm) the slope has moved since the year began (plus the scripted episodes
        of the slope or of ``device``)."""
        day = _local_day(t)
        jan1 = _calendar(day)[1]
        since = t - (jan1 * DAY_S - LOCAL_OFFSET_S)
        total = self.profile(slope).creep_mm_day * since / DAY_S
        for e in self.episodes(slope, x, y, jan1):
            if e.t0 < t:
                total += e.mm * _smoothstep((t - e.t0) / e.dur)
        for site, e in self.scripted:
            if site in (slope, device) and e.t0 < t:
                total += e.mm * _smoothstep((t - e.t0) / e.dur)
        return total


# --- the simulator --------------------------------------------------------------------------

Reading = dict[str, Any]
Values = dict[str, float | int]


def _unit_hydrograph(mode_slots: float, n: int) -> list[float]:
    theta = mode_slots / 2  # gamma, shape 3: mode = 2θ
    w = [(j + 0.5) ** 2 * math.exp(-(j + 0.5) / theta) for j in range(n)]
    total = sum(w)
    return [v / total for v in w]


class Simulator:
    """Readings for a set of devices. ``interval_s`` overrides every device's natural
    interval with one fixed interval and spreads the devices evenly over it (the load
    generator's mode: no event-driven messages and, unless asked, no dropouts)."""

    def __init__(
        self,
        devices: Iterable[SimDevice],
        seed: int = DEFAULT_SEED,
        *,
        interval_s: float | None = None,
        dropouts: bool | None = None,
        storms: Sequence[Storm] = (),
        accelerations: Sequence[Acceleration] = (),
    ) -> None:
        self.seed = seed
        self.rng = _Rng(seed)
        self.fixed = interval_s is not None
        self.dropouts = (not self.fixed) if dropouts is None else dropouts
        self.weather = Weather(seed, storms)
        self.slopes = Slopes(seed, self.weather, accelerations)
        self._routed_cache: dict[tuple[int, int], float] = {}
        self._intensity_cache: dict[tuple[int, int], float] = {}
        self._parking_cache: dict[tuple[int, int], tuple[list[float], list[int]]] = {}
        devs = sorted(devices, key=lambda d: d.code)
        self.devices: list[_Dev] = []
        self._slope_xy: dict[str, tuple[float, float]] = {}  # where a slope's rain is measured
        for i, d in enumerate(devs):
            key = _key(d.code)
            if interval_s is not None:
                interval = max(1, round(interval_s * 1000))
                phase = int(interval * i / max(1, len(devs)))
            else:
                interval = 1000 * INTERVAL_S.get(d.type, DEFAULT_INTERVAL_S)
                phase = 1000 * int(self.rng.u(S_PHASE, key) * interval / 1000)
            dev = _Dev(
                code=d.code,
                type=d.type,
                lat=d.lat,
                lon=d.lon,
                x=d.lon * KM_PER_DEG_LON,
                y=d.lat * KM_PER_DEG_LAT,
                site=d.site,
                key=key,
                interval_ms=interval,
                phase_ms=phase,
                # Slope devices follow their site; those without one, their town.
                slope=d.site or (f"town:{d.region_code[:9]}" if d.region_code else d.code),
            )
            self._params(dev)
            self.devices.append(dev)
            self._slope_xy.setdefault(dev.slope, (dev.x, dev.y))
        # Devices grouped by interval and sorted by phase: the ones due in a short window
        # are found by bisection.
        groups: dict[int, list[_Dev]] = {}
        for dev in self.devices:
            groups.setdefault(dev.interval_ms, []).append(dev)
        self._groups: list[tuple[int, list[_Dev], list[int]]] = []
        for interval, members in sorted(groups.items()):
            members.sort(key=lambda d: (d.phase_ms, d.code))
            self._groups.append((interval, members, [d.phase_ms for d in members]))
        self._event_devices = (
            [] if self.fixed else [d for d in self.devices if d.type in ("smoke", "parking")]
        )
        self._generators: dict[str, Callable[[_Dev, float], Values | None]] = {
            "gnss": self._gnss,
            "crack": self._crack,
            "inclinometer": self._inclinometer,
            "rain": self._rain,
            "water_level": self._water_level,
            "smoke": self._smoke,
            "hydrant": self._hydrant,
            "dust": self._dust,
            "noise": self._noise,
            "parking": self._parking_values,
            "rfid": self._rfid,
            "bus_gps": self._bus,
        }

    # -- parameters ----------------------------------------------------------------------

    def _params(self, d: _Dev) -> None:
        def u(n: int) -> float:
            return self.rng.u(S_PARAM, d.key, n)

        p = d.p
        match d.type:
            case "gnss":
                p["factor"] = 0.7 + 0.5 * u(1)
                p["v_ratio"] = -(0.25 + 0.25 * u(2))
            case "crack":
                p["base"] = 8.0 if d.slope == "LGW" else 2 + 6 * u(1)
                p["ratio"] = 0.125 if d.slope == "LGW" else 0.06 + 0.06 * u(2)
            case "inclinometer":
                p["x0"], p["y0"] = 2 * u(1) - 1, 2 * u(2) - 1
                p["kx"], p["ky"] = 0.006 + 0.006 * u(3), 0.004 * (2 * u(4) - 1)
            case "rain":
                p["gain"] = 0.92 + 0.16 * u(1)
            case "water_level":
                lake = d.site in LAKE_SITES
                p["lake"] = 1.0 if lake else 0.0
                p["base"] = 0.0 if lake else 1.5 + 2.5 * u(1)
                p["gain"] = 0.012 if lake else 0.12 + 0.08 * u(2)
                p["mode_slots"] = 32 if lake else 6 + 6 * u(3)  # 15-minute slots to the peak
            case "smoke":
                p["cycle_days"] = 540 + 180 * u(1)
                p["cycle_phase"] = u(2)
            case "hydrant":
                p["base"] = 0.27 + 0.1 * u(1)
            case "dust":
                p["site"] = 0.7 + 0.6 * u(1)
                p["fine"] = 0.42 + 0.15 * u(2)
            case "noise":
                p["day"] = 58 + 5 * u(1)
            case "rfid":
                p["base"] = 12 + 45 * u(1)
            case "bus_gps":
                self._bus_line(d)

    def _bus_line(self, d: _Dev) -> None:
        """A line from the bus's terminus (its registered position) towards the seat."""

        def u(n: int) -> float:
            return self.rng.u(S_PARAM, d.key, n)

        sx, sy = SEAT[0] * KM_PER_DEG_LON, SEAT[1] * KM_PER_DEG_LAT
        dx, dy = sx - d.x, sy - d.y
        dist = math.hypot(dx, dy)
        if 2 <= dist <= 12:
            length = dist
        else:
            length = 4 + 6 * u(1)
            if dist < 2:
                angle = 2 * math.pi * u(2)
                dx, dy, dist = math.cos(angle), math.sin(angle), 1.0
        d.p["bx"], d.p["by"] = d.x + dx / dist * length, d.y + dy / dist * length
        segments = max(1, round(length / 0.5))
        d.p.update(
            length=length,
            segments=segments,
            dwell=20 + 25 * u(3),
            run=60 + 50 * u(4),
            layover=240 + 240 * u(5),
            offset=u(6),
        )

    # -- schedule ------------------------------------------------------------------------

    def due(self, start: datetime, end: datetime) -> list[Reading]:
        """The readings scheduled in (start, end], in time order."""
        return self.due_ms(_ms(start), _ms(end))

    def readings(self, at: datetime) -> list[Reading]:
        """The readings due at ``at`` (in the second up to it): calling this for every second
        gives each reading exactly once."""
        end = _ms(at)
        return self.due_ms(end - 1000, end)

    def due_ms(self, start: int, end: int) -> list[Reading]:
        out: list[tuple[int, str, Values]] = []
        if end <= start:
            return []
        for interval, members, phases in self._groups:
            if end - start >= interval:
                for d in members:
                    k = -((start + 1 - d.phase_ms) // -interval)  # ceil
                    t = k * interval + d.phase_ms
                    while t <= end:
                        self._emit(d, t, k, out)
                        k += 1
                        t += interval
                continue
            lo, hi = (start + 1) % interval, end % interval
            ranges = [(lo, hi)] if lo <= hi else [(lo, interval - 1), (0, hi)]
            for a, b in ranges:
                for i in range(bisect_left(phases, a), bisect_right(phases, b)):
                    d = members[i]
                    k = -((start + 1 - d.phase_ms) // -interval)
                    self._emit(d, k * interval + d.phase_ms, k, out)
        for d in self._event_devices:
            for t, values in self._events(d, start, end):
                if not self._silent(d, t / 1000):
                    out.append((t, d.code, values))
        out.sort(key=lambda r: (r[0], r[1]))
        return [{"device": code, "ts": iso(t), "values": values} for t, code, values in out]

    def _emit(self, d: _Dev, t: int, k: int, out: list[tuple[int, str, Values]]) -> None:
        if self.dropouts and (self.rng.u(S_SKIP, d.key, k) < SKIP_P or self._silent(d, t / 1000)):
            return
        values = self._generators.get(d.type, self._unknown)(d, t / 1000)
        if values:
            out.append((t, d.code, values))

    def _silent(self, d: _Dev, t: float) -> bool:
        """Inside one of the device's outages (at most one starts per device-day)."""
        if not self.dropouts:
            return False
        p = OUTAGE_P.get(d.type, OUTAGE_P_DEFAULT)
        day = _local_day(t)
        for dd in (day - 1, day):
            if self.rng.u(S_OUTAGE, d.key, dd * 4) < p:
                begin = (
                    dd * DAY_S - LOCAL_OFFSET_S + DAY_S * self.rng.u(S_OUTAGE, d.key, dd * 4 + 1)
                )
                length = 900 * 32 ** self.rng.u(S_OUTAGE, d.key, dd * 4 + 2)  # 15 min – 8 h
                if begin <= t < begin + length:
                    return True
        return False

    def _unknown(self, d: _Dev, t: float) -> Values | None:
        return None

    def _z(self, d: _Dev, t: float, n: int = 0) -> float:
        return self.rng.z(S_NOISE + n, d.key, int(t))

    # -- slopes --------------------------------------------------------------------------

    def _slope(self, d: _Dev, t: float) -> float:
        x, y = self._slope_xy[d.slope]
        return self.slopes.displacement(d.slope, x, y, t, d.code)

    def _gnss(self, d: _Dev, t: float) -> Values:
        disp = d.p["factor"] * self._slope(d, t)
        h = _local_hour(t)
        wiggle = 0.3 * math.sin(2 * math.pi * (h - 14) / 24)  # daily multipath / thermal
        return {
            "disp_mm": round(disp + wiggle + 0.6 * self._z(d, t), 1),
            "disp_v_mm": round(d.p["v_ratio"] * disp + 1.2 * self._z(d, t, 1), 1),
        }

    def _crack(self, d: _Dev, t: float) -> Values:
        h = _local_hour(t)
        doy = _calendar(_local_day(t))[0]
        thermal = 0.15 * math.cos(2 * math.pi * (h - 5) / 24) + 0.25 * math.cos(
            2 * math.pi * (doy - 15) / 365
        )  # cracks open when it is cold
        width = d.p["base"] + d.p["ratio"] * self._slope(d, t) + thermal
        return {"crack_mm": round(max(0.0, width + 0.03 * self._z(d, t)), 2)}

    def _inclinometer(self, d: _Dev, t: float) -> Values:
        s = self._slope(d, t)
        return {
            "tilt_x_deg": round(d.p["x0"] + d.p["kx"] * s + 0.003 * self._z(d, t), 3),
            "tilt_y_deg": round(d.p["y0"] + d.p["ky"] * s + 0.003 * self._z(d, t, 1), 3),
        }

    # -- water ---------------------------------------------------------------------------

    def _rain(self, d: _Dev, t: float) -> Values:
        mm = self.weather.amount(d.x, d.y, t - d.interval_ms / 1000, t) * d.p["gain"]
        return {"rain_mm": round(min(mm, 300.0), 1) if mm >= 0.05 else 0.0}

    def _catchment(self, d: _Dev, slot: int) -> float:
        """Mean rain rate (mm/h) over the gauge's catchment — the gauge and two points
        upstream (north, towards the mountains) — in a 15-minute slot."""
        cached = self._intensity_cache.get((d.key, slot))
        if cached is None:
            t = slot * 900 + 450
            reach = 15.0 if d.p["lake"] else 12.0
            cached = (
                self.weather.intensity(d.x, d.y, t)
                + self.weather.intensity(d.x, d.y + reach, t)
                + self.weather.intensity(d.x - 0.5 * reach, d.y + 2 * reach, t)
            ) / 3
            if len(self._intensity_cache) > 200_000:
                self._intensity_cache.clear()
            self._intensity_cache[(d.key, slot)] = cached
        return cached

    def _routed(self, d: _Dev, slot: int) -> float:
        cached = self._routed_cache.get((d.key, slot))
        if cached is None:
            weights = _hydrograph(d.p["mode_slots"])
            cached = sum(w * self._catchment(d, slot - j) for j, w in enumerate(weights))
            if len(self._routed_cache) > 200_000:
                self._routed_cache.clear()
            self._routed_cache[(d.key, slot)] = cached
        return cached

    def _water_level(self, d: _Dev, t: float) -> Values:
        slot = int(t // 900)
        frac = t / 900 - slot
        routed = (1 - frac) * self._routed(d, slot - 1) + frac * self._routed(d, slot)
        day = _local_day(t)
        doy = _calendar(day)[0]
        if d.p["lake"]:
            # Hanfeng lake: held at 175 m in winter, drawn down to 168.5 m for the flood season.
            base = 171.75 + 3.25 * math.cos(2 * math.pi * (doy - 20) / 365)
        else:
            base = d.p["base"] + 0.6 * _season(day)
        level = base + d.p["gain"] * routed + 0.01 * self._z(d, t)
        return {"level_m": round(level, 2)}

    # -- fire ----------------------------------------------------------------------------

    def _smoke_event(self, d: _Dev, day: int) -> tuple[float, float] | None:
        if self.rng.u(S_EVENT, d.key, day * 4) >= 1 / 200:
            return None
        begin = day * DAY_S - LOCAL_OFFSET_S + DAY_S * self.rng.u(S_EVENT, d.key, day * 4 + 1)
        begin = float(int(begin))
        return begin, begin + 180 + 1020 * self.rng.u(S_EVENT, d.key, day * 4 + 2)

    def _smoke_active(self, d: _Dev, t: float) -> bool:
        day = _local_day(t)
        for dd in (day - 1, day):
            event = self._smoke_event(d, dd)
            if event and event[0] <= t < event[1]:
                return True
        return False

    def _battery(self, d: _Dev, t: float) -> int:
        days = t / DAY_S / d.p["cycle_days"] + d.p["cycle_phase"]
        return max(3, round(100 - 97 * (days % 1.0)))

    def _smoke(self, d: _Dev, t: float) -> Values:
        return {"smoke": int(self._smoke_active(d, t)), "battery_pct": self._battery(d, t)}

    def _hydrant(self, d: _Dev, t: float) -> Values:
        h = _local_hour(t)
        demand = 0.035 * _bump(h, 7.5, 1.2) + 0.04 * _bump(h, 19.5, 1.5)
        pressure = d.p["base"] - demand + 0.004 * self._z(d, t)
        day = _local_day(t)
        for dd in (day - 1, day):
            if self.rng.u(S_EVENT, d.key, dd * 4) >= 1 / 100:
                continue
            begin = dd * DAY_S - LOCAL_OFFSET_S + DAY_S * self.rng.u(S_EVENT, d.key, dd * 4 + 1)
            length = 600 + 6600 * self.rng.u(S_EVENT, d.key, dd * 4 + 2) ** 1.5
            floor = 0.02 + 0.11 * self.rng.u(S_EVENT, d.key, dd * 4 + 3)
            if begin <= t < begin + length + 300:
                # Falls within two minutes, holds, recovers over five.
                into = min(1.0, (t - begin) / 120, max(0.0, (begin + length + 300 - t) / 300))
                pressure = pressure + (floor - pressure) * into
        return {"pressure_mpa": round(min(2.5, max(0.0, pressure)), 3)}

    # -- construction sites --------------------------------------------------------------

    def _episode(self, d: _Dev, t: float, p_day: float) -> tuple[float, float] | None:
        """A work-hours episode (dust, machinery) that day: (how far into it, its level 0..1)."""
        day = _local_day(t)
        if self.rng.u(S_EVENT, d.key, day * 4) >= p_day:
            return None
        length = 3600 * (1.5 + 2.5 * self.rng.u(S_EVENT, d.key, day * 4 + 2))
        if d.type == "noise":
            length = 60 * (20 + 70 * self.rng.u(S_EVENT, d.key, day * 4 + 2))
        begin_h = 8.5 + (17.5 - 8.5 - length / 3600) * self.rng.u(S_EVENT, d.key, day * 4 + 1)
        begin = day * DAY_S - LOCAL_OFFSET_S + begin_h * 3600
        if not begin <= t < begin + length:
            return None
        return (t - begin) / length, self.rng.u(S_EVENT, d.key, day * 4 + 3)

    def _dust(self, d: _Dev, t: float) -> Values:
        h = _local_hour(t)
        day = _local_day(t)
        winter = 1 - _season(day)  # inversions and smog in the cold months
        background = (30 + 60 * winter) * (1 + 0.35 * _bump(h, 8.5, 2.0))
        works = 35 * d.p["site"] if 7.5 <= h < 18.5 and not 12 <= h < 13.5 else 0.0
        pm10 = (background + works) * math.exp(0.12 * self._z(d, t))
        episode = self._episode(d, t, 0.2)
        if episode is not None:
            into, level = episode
            ramp = min(1.0, into / 0.08, (1 - into) / 0.08)
            pm10 = max(pm10, (140 + 240 * level) * ramp * math.exp(0.05 * self._z(d, t, 1)))
        if self.weather.intensity(d.x, d.y, t) > 2:
            pm10 *= 0.5  # rain washes the dust out
        pm25 = pm10 * d.p["fine"] * math.exp(0.05 * self._z(d, t, 1))
        return {"pm10_ugm3": round(min(pm10, 5000.0)), "pm25_ugm3": round(min(pm25, 2000.0))}

    def _noise(self, d: _Dev, t: float) -> Values:
        h = _local_hour(t)
        if 7 <= h < 12 or 13.5 <= h < 18:
            leq = d.p["day"]
        elif 6 <= h < 22:
            leq = d.p["day"] - 6
        else:
            leq = 47.0
        leq += 1.8 * self._z(d, t)
        episode = self._episode(d, t, 0.25)
        if episode is not None:
            _into, level = episode
            leq = max(leq, 71.5 + 8 * level + 1.0 * self._z(d, t, 1))
        return {"leq_dba": round(min(140.0, max(20.0, leq)), 1)}

    # -- traffic -------------------------------------------------------------------------

    def _rfid(self, d: _Dev, t: float) -> Values:
        mean = d.p["base"] * _traffic(_local_hour(t)) * d.interval_ms / 300_000
        reads = mean + math.sqrt(max(mean, 1e-9)) * self._z(d, t)
        return {"reads": max(0, min(100_000, round(reads)))}

    def _sessions(self, d: _Dev, day: int) -> tuple[list[float], list[int]]:
        """One bay's changes (time, new state) in a local day running from 04:00; the first
        entry is the state at 04:00."""
        cached = self._parking_cache.get((d.key, day))
        if cached is not None:
            return cached
        u = self.rng.u
        begin = float(day * DAY_S - LOCAL_OFFSET_S + 4 * 3600)
        t, n = begin, 0
        # The day carries on from the one before; every eighth day starts afresh (a chain
        # must start somewhere), with an overnight parker one time in four.
        if day % 8:
            state = self._sessions(d, day - 1)[1][-1]
        else:
            state = int(u(S_PARK, d.key, day * 512) < 0.25)
        times, states = [begin], [state]
        while t < begin + DAY_S and n < 200:
            n += 1
            h = _local_hour(t)
            r = u(S_PARK, d.key, day * 512 + n)
            if state:  # how long this car stays
                if h >= 19 or h < 4:
                    stay = 3600 * (6 + 6 * r) if r < 0.6 else 600 + 5400 * r
                else:
                    stay = 600 * 18**r  # 10 min – 3 h
                t += stay
            else:  # how long the bay stays free
                busy = 0.15 + 0.85 * min(1.0, _traffic(h))
                t += 120 + 1500 * (-math.log(1 - 0.98 * r)) / busy
            state = 1 - state
            if t < begin + DAY_S:
                times.append(t)
                states.append(state)
        if len(self._parking_cache) > 100_000:
            self._parking_cache.clear()
        self._parking_cache[(d.key, day)] = (times, states)
        return times, states

    def _occupied(self, d: _Dev, t: float) -> int:
        day = _local_day(t - 4 * 3600)
        times, states = self._sessions(d, day)
        return states[max(0, bisect_right(times, t) - 1)]

    def _parking_values(self, d: _Dev, t: float) -> Values:
        return {"occupied": self._occupied(d, t)}

    def _bus(self, d: _Dev, t: float) -> Values | None:
        p = d.p
        h = _local_hour(t)
        in_service = BUS_HOURS[0] <= h < BUS_HOURS[1]
        if not in_service and not self.fixed:
            return None  # ignition off at the depot: no reports overnight
        seg_len = p["length"] / p["segments"] * 1000  # m
        leg = p["segments"] * (p["dwell"] + p["run"])
        cycle = 2 * (leg + p["layover"])
        tau = (t + p["offset"] * cycle) % cycle if in_service else 0.0
        back = tau >= leg + p["layover"]
        if back:
            tau -= leg + p["layover"]
        pos, speed = p["length"] * 1000, 0.0
        if tau < leg:
            i = int(tau // (p["dwell"] + p["run"]))
            into = tau - i * (p["dwell"] + p["run"])
            pos = i * seg_len
            if into >= p["dwell"]:
                v = (into - p["dwell"]) / p["run"]
                pos += seg_len * (1 - math.cos(math.pi * v)) / 2
                speed = seg_len * math.pi / (2 * p["run"]) * math.sin(math.pi * v) * 3.6
        frac = pos / (p["length"] * 1000)
        if back:
            frac = 1 - frac
        x = d.x + (p["bx"] - d.x) * frac
        y = d.y + (p["by"] - d.y) * frac
        jitter = 0.003  # km: a few metres of GPS noise
        return {
            "lat": round((y + jitter * self._z(d, t)) / KM_PER_DEG_LAT, 6),
            "lon": round((x + jitter * self._z(d, t, 1)) / KM_PER_DEG_LON, 6),
            "speed_kmh": round(speed, 1),
        }

    # -- event-driven messages -----------------------------------------------------------

    def _events(self, d: _Dev, start: int, end: int) -> list[tuple[int, Values]]:
        """Messages sent when something happens (not on the heartbeat schedule)."""
        out: list[tuple[int, Values]] = []
        s, e = start / 1000, end / 1000
        if d.type == "smoke":
            for day in range(_local_day(s) - 1, _local_day(e) + 1):
                event = self._smoke_event(d, day)
                if event is None:
                    continue
                begin, finish = event
                t = begin
                while t < finish:  # the alarm, repeated every minute while it lasts
                    if s < t <= e:
                        out.append(
                            (int(t * 1000), {"smoke": 1, "battery_pct": self._battery(d, t)})
                        )
                    t += 60
                if s < finish <= e:
                    at = int(finish * 1000)
                    out.append((at, {"smoke": 0, "battery_pct": self._battery(d, finish)}))
        elif d.type == "parking":
            for day in range(_local_day(s - 4 * 3600), _local_day(e - 4 * 3600) + 1):
                times, states = self._sessions(d, day)
                for i in range(bisect_right(times, s), bisect_right(times, e)):
                    before = states[i - 1] if i else self._sessions(d, day - 1)[1][-1]
                    if states[i] != before:
                        out.append((int(times[i] * 1000), {"occupied": states[i]}))
        return out


@lru_cache(maxsize=64)
def _hydrograph_cached(mode_slots: float) -> tuple[float, ...]:
    n = max(24, int(mode_slots * 5))
    return tuple(_unit_hydrograph(mode_slots, n))


def _hydrograph(mode_slots: float) -> tuple[float, ...]:
    return _hydrograph_cached(round(mode_slots, 2))


# --- devices from the database --------------------------------------------------------------


def devices_from_db(
    session: Session, codes: Iterable[str] | None = None, *, limit: int | None = None
) -> list[SimDevice]:
    """Active devices (all, the named ones, or the first ``limit`` by code)."""
    from sqlalchemy import select

    from cityops.telemetry.models import Device, DeviceGroup

    query = (
        select(Device, DeviceGroup.code)
        .outerjoin(DeviceGroup, DeviceGroup.id == Device.group_id)
        .where(Device.active.is_(True))
        .order_by(Device.code)
    )
    if codes is not None:
        query = query.where(Device.code.in_(sorted(set(codes))))
    if limit is not None:
        query = query.limit(limit)
    return [SimDevice.of(d, group) for d, group in session.execute(query)]


# --- transports -----------------------------------------------------------------------------


@dataclass
class Outcome:
    """Running totals of a sink. ``sent``: readings the receiver took (HTTP 200, MQTT PUBACK,
    or ingested); ``rejected``: values it refused as invalid; ``failed``: readings not
    delivered (a transport error, an HTTP error status, an unacknowledged publish)."""

    sent: int = 0
    rejected: int = 0
    failed: int = 0
    stored: int = 0
    alarms: int = 0
    last_error: str = ""

    def copy(self) -> Outcome:
        return Outcome(
            self.sent, self.rejected, self.failed, self.stored, self.alarms, self.last_error
        )


class Source(Protocol):
    """What gives readings: a :class:`Simulator`, or a test's script."""

    def due(self, start: datetime, end: datetime) -> list[Reading]: ...


class Sink(Protocol):
    def send(self, readings: list[Reading]) -> None: ...

    def stats(self) -> Outcome: ...

    def close(self) -> Outcome: ...


def _chunks(items: list[Reading], size: int) -> Iterable[list[Reading]]:
    for i in range(0, len(items), size):
        yield items[i : i + size]


def _dumps(obj: Any) -> bytes:
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


class HttpSink:
    """POST batches to ``/api/v1/telemetry`` with an API key (scope ``telemetry:write``).
    A batch that meets a server error (5xx, 429) or a broken connection is sent again up to
    ``retries`` times, as a gateway would: readings are unique by (device, metric, ts), so a
    retry never stores one twice. ``retried`` counts those second attempts."""

    RETRY_STATUS = frozenset({429, 500, 502, 503, 504})

    def __init__(
        self,
        url: str,
        api_key: str,
        *,
        batch: int = 2000,
        timeout_s: float = 30.0,
        retries: int = 3,
        http: requests.Session | None = None,
    ) -> None:
        import requests

        base = url.rstrip("/")
        self.endpoint = base if base.endswith("/api/v1/telemetry") else f"{base}/api/v1/telemetry"
        self.batch = max(1, min(batch, 10_000))
        self.timeout_s = timeout_s
        self.retries = max(0, retries)
        self.retried = 0
        self.http = http or requests.Session()
        self.http.headers.update({"X-API-Key": api_key, "Content-Type": "application/json"})
        self.totals = Outcome()

    def send(self, readings: list[Reading]) -> None:
        for chunk in _chunks(readings, self.batch):
            self._post(chunk)

    def _post(self, chunk: list[Reading]) -> None:
        import requests

        body = _dumps(chunk)
        for attempt in range(self.retries + 1):
            if attempt:
                self.retried += 1
                time.sleep(0.25 * 2**attempt)
            try:
                r = self.http.post(self.endpoint, data=body, timeout=self.timeout_s)
            except requests.RequestException as exc:
                self.totals.last_error = f"{type(exc).__name__}: {exc}"[:300]
                continue
            if r.status_code == 200:
                break
            self.totals.last_error = f"HTTP {r.status_code}: {r.text[:250]}"
            if r.status_code not in self.RETRY_STATUS:
                break
        else:
            self.totals.failed += len(chunk)
            return
        if r.status_code != 200:
            self.totals.failed += len(chunk)
            return
        answer = r.json()
        self.totals.sent += len(chunk)
        self.totals.stored += int(answer.get("stored", 0))
        self.totals.rejected += int(answer.get("rejected_count", 0))
        self.totals.alarms += len(answer.get("alarms", []))
        if answer.get("rejected"):
            first = answer["rejected"][0]
            self.totals.last_error = f"rejected: {first.get('device')} {first.get('reason')}"

    def stats(self) -> Outcome:
        return self.totals.copy()

    def close(self) -> Outcome:
        self.http.close()
        return self.stats()


class MqttSink:
    """Publish each reading at QoS 1 to ``cityops/{device}/telemetry`` as
    ``{"ts", "values"}`` (the topic names the device) — or, with ``gateways`` (device code →
    its group's code), as a field gateway (DTU) does: the readings of a group's devices
    handed over at once, up to ``per_message`` of them in one array of
    ``{"device", "ts", "values"}`` on ``cityops/{group}/telemetry`` (a device without a group
    still publishes its own). ``sent`` counts the readings of acknowledged messages."""

    def __init__(
        self,
        url: str,
        *,
        client_id: str | None = None,
        topic: str = "cityops/{device}/telemetry",
        max_inflight: int = 100,  # paho slows down with thousands in flight
        timeout_s: float = 30.0,
        gateways: Mapping[str, str | None] | None = None,
        per_message: int = 100,
    ) -> None:
        import os

        import paho.mqtt.client as mqtt
        from paho.mqtt.enums import CallbackAPIVersion

        from cityops.telemetry.mqtt import parse_url

        broker = parse_url(url)
        self.broker = f"{broker.host}:{broker.port}"
        self.topic = topic
        self.timeout_s = timeout_s
        self.gateways = gateways
        self.per_message = per_message
        self.totals = Outcome()
        self._lock = threading.Lock()
        self._published = 0  # readings
        self._sizes: dict[int, int] = {}  # message id → readings in it, until acknowledged
        self._early: dict[int, Any] = {}  # acknowledged before publish() returned: reason
        self._connected = threading.Event()
        self._refused = ""
        self.client = mqtt.Client(
            callback_api_version=CallbackAPIVersion.VERSION2,
            client_id=client_id or f"cityops-sim-{os.getpid()}-{int(time.time() * 1000) % 100000}",
        )
        if broker.username:
            self.client.username_pw_set(broker.username, broker.password)
        if broker.tls:
            self.client.tls_set()
        self.client.max_inflight_messages_set(max_inflight)
        self.client.max_queued_messages_set(0)
        self.client.on_connect = self._on_connect
        self.client.on_publish = self._on_publish
        self.client.connect(broker.host, broker.port, keepalive=60)
        self.client.loop_start()
        if not self._connected.wait(timeout_s) or self._refused:
            self.client.loop_stop()
            raise ConnectionError(f"MQTT broker {self.broker}: {self._refused or 'no answer'}")

    def _on_connect(self, client: Any, userdata: Any, flags: Any, reason: Any, props: Any) -> None:
        if getattr(reason, "is_failure", False):
            self._refused = str(reason)
        self._connected.set()

    def _on_publish(self, client: Any, userdata: Any, mid: int, reason: Any, props: Any) -> None:
        with self._lock:
            size = self._sizes.pop(mid, None)
            if size is None:  # publish() has not told us its size yet
                self._early[mid] = reason
            else:
                self._count(size, reason)

    def _count(self, size: int, reason: Any) -> None:
        if getattr(reason, "is_failure", False):
            self.totals.failed += size
            self.totals.last_error = f"PUBACK {reason}"
        else:
            self.totals.sent += size

    def messages(self, readings: list[Reading]) -> list[tuple[str, bytes, int]]:
        """(topic, payload, readings in it) for these readings."""
        if self.gateways is None:
            return [m for r in readings for m in self._own(r)]
        out: list[tuple[str, bytes, int]] = []
        by_group: dict[str, list[Reading]] = {}
        for r in readings:
            group = self.gateways.get(r["device"])
            if group is None:
                out += self._own(r)
            else:
                by_group.setdefault(group, []).append(r)
        for group, rows in by_group.items():
            for i in range(0, len(rows), self.per_message):
                part = rows[i : i + self.per_message]
                body = [{"device": r["device"], "ts": r["ts"], "values": r["values"]} for r in part]
                out.append((self.topic.format(device=group), _dumps(body), len(part)))
        return out

    def _own(self, r: Reading) -> list[tuple[str, bytes, int]]:
        payload = _dumps({"ts": r["ts"], "values": r["values"]})
        return [(self.topic.format(device=r["device"]), payload, 1)]

    def send(self, readings: list[Reading]) -> None:
        import paho.mqtt.client as mqtt

        for topic, payload, size in self.messages(readings):
            # MQTT packet ids are 16-bit: with more than 65,535 messages outstanding a client
            # reuses ids still in flight and messages are lost, so wait below a bound.
            while True:
                with self._lock:
                    outstanding = self._published - self.totals.sent - self.totals.failed
                if outstanding < MAX_OUTSTANDING:
                    break
                time.sleep(0.01)
            # Not under the lock: paho may call _on_publish from its thread meanwhile.
            info = self.client.publish(topic, payload, qos=1)
            with self._lock:
                if info.rc != mqtt.MQTT_ERR_SUCCESS:
                    self.totals.failed += size
                    self.totals.last_error = mqtt.error_string(info.rc)
                    continue
                self._published += size
                if info.mid in self._early:
                    self._count(size, self._early.pop(info.mid))
                else:
                    self._sizes[info.mid] = size

    def stats(self) -> Outcome:
        with self._lock:
            return self.totals.copy()

    def close(self) -> Outcome:
        """Wait (up to the timeout) for the outstanding acknowledgements, then disconnect;
        publishes still unacknowledged count as failed."""
        deadline = time.monotonic() + self.timeout_s
        while time.monotonic() < deadline:
            with self._lock:
                done = self.totals.sent + self.totals.failed >= self._published
            if done:
                break
            time.sleep(0.05)
        self.client.disconnect()
        self.client.loop_stop()
        with self._lock:
            missing = self._published - self.totals.sent - self.totals.failed
            if missing > 0:
                self.totals.failed += missing
                self.totals.last_error = f"{missing} publishes not acknowledged"
            return self.totals.copy()


SIM_ACTOR_NAME = "遥测模拟 / telemetry simulator"
MAX_OUTSTANDING = 20_000


class InProcessSink:
    """Ingest in this process, one transaction per batch (what ``cityops demo`` uses).
    ``factory`` is ``session_factory(engine, writer=True)``; ``clock`` gives the ingest time;
    ``fold=False`` leaves the roll-ups to a folder (``cityops.telemetry.fold``)."""

    def __init__(
        self,
        factory: sessionmaker[Session],
        *,
        clock: Callable[[], datetime] | None = None,
        policy: Policy | None = None,
        batch: int = 2000,
        fold: bool = True,
    ) -> None:
        # Every domain's models: an alarm may open a case, so the mappers must all be known
        # even in a process that has not built the web app (a command, the demo's start).
        import cityops.models  # noqa: F401

        self.factory = factory
        self.clock = clock or (lambda: datetime.now(UTC))
        self.policy = policy
        self.batch = max(1, batch)
        self.fold = fold
        self.totals = Outcome()

    def send(self, readings: list[Reading]) -> None:
        from cityops.auth import audit
        from cityops.db import transaction
        from cityops.telemetry.ingest import ingest

        for chunk in _chunks(readings, self.batch):
            try:
                with transaction(self.factory) as session:
                    audit.set_actor(session, audit.Actor("system", "simulator", SIM_ACTOR_NAME))
                    result = ingest(
                        session, chunk, self.clock(), policy=self.policy, fold=self.fold
                    )
            except Exception as exc:  # the caller decides whether to go on
                log.exception("in-process ingest failed")
                self.totals.failed += len(chunk)
                self.totals.last_error = f"{type(exc).__name__}: {exc}"[:300]
                continue
            self.totals.sent += len(chunk)
            self.totals.stored += result.stored
            self.totals.rejected += len(result.rejected)
            self.totals.alarms += len(result.alarms)
            if result.rejected:
                first = result.rejected[0]
                self.totals.last_error = f"rejected: {first.device} {first.reason}"

    def stats(self) -> Outcome:
        return self.totals.copy()

    def close(self) -> Outcome:
        return self.stats()


# --- real-time pacing -----------------------------------------------------------------------


def stream(
    sim: Simulator,
    sink: Sink,
    *,
    duration_s: float | None = None,
    tick_s: float = 0.1,
    stop: threading.Event | None = None,
    on_tick: Callable[[Outcome, float], None] | None = None,
    clock: Callable[[], float] = time.time,
) -> tuple[Outcome, float]:
    """Send the readings as they fall due, in real time, until ``duration_s`` has passed or
    ``stop`` is set. Returns the sink's final totals and the seconds it ran."""
    stop = stop or threading.Event()
    began = clock()
    last_ms = int(began * 1000)
    until = began + duration_s if duration_s is not None else math.inf
    try:
        while True:
            now = min(clock(), until)
            now_ms = int(now * 1000)
            if now_ms > last_ms:
                sink.send(sim.due_ms(last_ms, now_ms))
                last_ms = now_ms
            if on_tick is not None:
                on_tick(sink.stats(), now - began)
            if now >= until or stop.is_set():
                break
            stop.wait(max(0.0, tick_s - (clock() - now)))
    except KeyboardInterrupt:  # Ctrl-C: stop sending, still settle and report
        pass
    totals = sink.close()
    return totals, max(1e-9, clock() - began)  # behind schedule: more than duration_s
