"""The July rainstorm at 老沟湾 (义和镇太康村6组), replayed on an accelerated clock.

``cityops demo --story landslide [--speed 600]`` serves the demo as usual and plays this story
in a background thread. Tests call :func:`run`, which — at the default infinite speed — plays
the whole story synchronously, without sleeping, and returns a :class:`StoryResult`.

The clock
---------
Simulated time starts ``Timeline.hours`` (72 h) before the real start, on the hour, and runs
``speed`` times faster than real time: the story ends at about real now, so every reading is
in the past and valid (ingestion refuses readings from the future). At speed 600 the three
days take about seven minutes; one simulated hour is six seconds.

The storyline (hours from the story's start; the defaults of :class:`Timeline`)
-------------------------------------------------------------------------------
1. **Backfill** — 30 days of slow uniform creep at the GNSS stations, the crack meter and the
   inclinometer (90 % of each monitor's ``v_uniform``: a tangent angle of 42°, blue) and dry
   weather, so the analytics have a steady stage to measure the acceleration against.
2. **Rain** (h 2–50) — a 48-hour event: a day of light rain, an evening of moderate rain,
   then eight hours of rainstorm peaking at 36 mm/h (h 37–38); about 200 mm in all, above the
   Guzzetti (2008) and Caine (1980) intensity–duration thresholds and the 100 mm in 24 h mark.
3. **Acceleration** (from h 20) — the soaked slope accelerates along Fukuzono's law: the
   velocity v = v₀·T/(T − τ) has an inverse falling linearly to zero at the failure time
   (h 56, 18 h after the rain peak), so s = v₀·T·ln(T/(T − τ)). The tangent angle climbs from
   42° through yellow (> 45°), orange (≥ 80°) and red (≥ 85°) and the inverse-velocity
   forecast counts down; with the rain this reads yellow (h ≈ 27), orange (h ≈ 36: 50 mm in
   24 h and failure forecast within a day) and red (h ≈ 51: failure within 6 h).
   The analytics normally work on daily steps (hourly GNSS noise would swamp the angle); for
   the storm the story switches LGW to hourly steps (its readings are dense and clean) and
   back to the default when it ends.
4. **Analytics** — after every simulated hour, the hour's readings are ingested and LGW is
   evaluated (``analysis.evaluate`` + ``analysis.apply``) in one transaction; yellow or more
   proposes a warning (or raises, or suggests raising, the open one).
5. **Command** — 20 simulated minutes after a proposal the district commander (the demo
   district's 指挥长) confirms it and five minutes later issues it (CAP Alert); when the
   analytics suggest a higher level he updates it (CAP Update). At orange or red the
   evacuation opens and every grid worker with households in the zone gets a task.
6. **Evacuation** — the grid workers reach their households one by one: notified → evacuated
   → sheltered (in the first shelter with room). Two families go to relatives (evacuated
   only); one elderly household refuses at first and agrees an hour and a half later.
7. **All clear** — the rain stops at h 50 and at h 54.5 drainage wins: the slope decelerates
   (creep falls to 60 % of v_uniform). Once the level has stayed below yellow for three
   evaluations and everyone is out, the commander lifts the warning (CAP Cancel) and the
   evacuation closes with its record.

Every step is one transaction with its actor on the audit log (the story's system actor, the
commander, each grid worker) and is reported in Chinese through ``on_step``, e.g.
``[故事] 07-12 03:00 雨量计 RG-1 1 小时雨量 36.0 mm``.

Living with the rest of the demo: the regular telemetry feed leaves the LGW devices to the
story (``devices.start(skip_sites=...)``), and because each hour's readings commit together
with their evaluation, the background worker never finds LGW due for an evaluation of its
own. Until the story catches up with real time the LGW devices look offline on the cockpit,
and the worker's no-data rule raises "device silent" for them, which the story's next readings
clear again.

The readings are synthetic and smooth, without sensor noise: with a v_uniform of a few tenths
of a millimetre a day, noise of even 0.1 mm an hour would swamp the tangent angle. The story
needs a database where LGW has no readings in its window and no warning yet (a fresh demo);
otherwise :func:`run` raises :class:`StoryError` rather than mix two histories.
"""

from __future__ import annotations

import heapq
import logging
import math
import random
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from cityops.alarms.models import Alarm, AlarmRule
from cityops.auth import audit
from cityops.auth.models import Account
from cityops.auth.principal import Who
from cityops.db import transaction, utcnow
from cityops.demo import devices as demo_devices
from cityops.demo.district import DISTRICT_CODE
from cityops.org.models import Person, PersonRole, Unit
from cityops.org.roles import Role
from cityops.telemetry.ingest import ingest
from cityops.telemetry.models import Device, Latest
from cityops.warning import analysis, evacuation, workflow
from cityops.warning import service as registry
from cityops.warning.models import (
    AT_HOME,
    LEVEL_RANK,
    LEVEL_ZH,
    CapMessage,
    Evacuation,
    RiskPoint,
    Warning,
    WarningEvent,
)

log = logging.getLogger("cityops.demo.story")

STORIES = ("landslide",)
SITE = demo_devices.LGW
CST = timezone(timedelta(hours=8))  # the story is told in Chongqing time
ACTOR = audit.Actor("system", "story", "演示故事 / story")
HOUR = timedelta(hours=1)
# The analytics' step while the story watches LGW closely (its readings are dense and clean).
CLOSE_WATCH_STEP_H = 1.0

# Rain in each hour from Timeline.rain_start_h, mm (≈ 200 mm in 48 h): a day of light rain, an
# evening of moderate rain, eight hours of rainstorm (peak 36 mm/h), then it tails off.
RAIN_MM = (
    *(0.4, 0.9, 0.6, 1.5, 1.9, 0.8, 0.3, 0.7, 1.2, 1.7, 1.0, 0.5),
    *(0.2, 0.6, 1.0, 1.6, 2.0, 1.3, 0.8, 1.1, 1.6, 2.1, 1.4, 0.9),
    *(2.6, 3.6, 3.1, 4.5, 3.9, 5.1, 5.8, 4.4),
    *(8.4, 13.9, 21.2, 36.0, 23.8, 14.6, 8.7, 5.7),
    *(3.9, 2.9, 2.0, 1.5, 0.9, 0.6, 0.3, 0.2),
)
# How an hour's rain falls over its four quarters (a gauge reports every 15 minutes). In the
# peak hour a quarter brings more than 10 mm (the short-duration rainstorm alarm rule) and the
# hour ends on more than 8 mm while the crack is past 15 mm (LGW's rain-and-crack rule).
QUARTERS = ((0.22, 0.31, 0.27, 0.20), (0.28, 0.24, 0.21, 0.27), (0.19, 0.26, 0.33, 0.22))
PEAK_QUARTERS = (0.20, 0.24, 0.29, 0.27)
CRACK_AT_PEAK_MM = 15.02
STATUS_ZH = {
    "notified": "已通知",
    "evacuated": "已转移",
    "sheltered": "已安置",
    "refused": "拒绝转移",
}


class StoryError(RuntimeError):
    """The story cannot be played on this database (the message says why, Chinese first)."""


@dataclass(frozen=True)
class Timeline:
    """When things happen, in hours from the story's start; pauses in simulated minutes."""

    hours: int = 72
    backfill_days: float = 30.0
    rain_start_h: int = 2
    onset_h: float = 20.0  # the soaked slope starts to accelerate
    failure_h: float = 56.0  # where Fukuzono's law would end …
    turn_h: float = 54.5  # … but from here drainage wins and it decelerates
    decay_h: float = 1.5  # e-folding time of the deceleration
    creep: float = 0.9  # steady creep as a share of v_uniform (42°: blue)
    creep_after: float = 0.6  # after the event (31°: no level)
    decide_min: float = 20.0  # proposal → the commander confirms
    issue_min: float = 5.0  # confirmed → issued
    update_min: float = 15.0  # higher level suggested → CAP Update
    calm_evaluations: int = 3  # below the proposing level this often → lift
    lift_min: float = 30.0

    def rain_mm(self, hour: int) -> float:
        """Rain in the hour (hour − 1, hour] since the start."""
        i = hour - 1 - self.rain_start_h
        return RAIN_MM[i] if 0 <= i < len(RAIN_MM) else 0.0

    @property
    def peak_h(self) -> int:
        return self.rain_start_h + 1 + RAIN_MM.index(max(RAIN_MM))

    def slope_mm(self, v_uniform: float, h: float) -> float:
        """Displacement (mm) since the story's start of a monitor whose steady-creep velocity is
        ``v_uniform`` mm/day; ``h`` may be negative (the backfill)."""
        v0 = self.creep * v_uniform / 24.0  # mm/h
        if h <= self.onset_h:
            return v0 * h
        span = self.failure_h - self.onset_h
        if h <= self.turn_h:
            return v0 * self.onset_h + v0 * span * math.log(span / (span - (h - self.onset_h)))
        ran = self.turn_h - self.onset_h
        at_turn = v0 * self.onset_h + v0 * span * math.log(span / (span - ran))
        v_turn = v0 * span / (span - ran)
        v_after = self.creep_after * v_uniform / 24.0
        since = h - self.turn_h
        return (
            at_turn
            + v_after * since
            + (v_turn - v_after) * self.decay_h * (1.0 - math.exp(-since / self.decay_h))
        )


@dataclass(frozen=True)
class Step:
    """One thing that happened, at its simulated time."""

    at: datetime
    kind: str  # data | level | warning | evacuation | story
    text: str

    def line(self) -> str:
        return f"[故事] {self.at.astimezone(CST):%m-%d %H:%M} {self.text}"


@dataclass
class StoryResult:
    start: datetime
    end: datetime
    warning: str | None = None
    states: list[str] = field(default_factory=list)  # the warning's states, in order
    levels: list[str] = field(default_factory=list)  # the point's level, repeats collapsed
    evaluations: list[tuple[datetime, str]] = field(default_factory=list)
    cap: list[tuple[str, str]] = field(default_factory=list)  # (msgType, level)
    evacuation: dict[str, Any] = field(default_factory=dict)  # the record at closing
    timings: dict[str, datetime] = field(default_factory=dict)  # simulated times
    steps: list[Step] = field(default_factory=list)


@dataclass(frozen=True)
class _Person:
    name: str
    actor: audit.Actor

    @property
    def who(self) -> Who:
        return Who("person", self.name)


@dataclass(frozen=True)
class _Monitor:
    device: str
    kind: str  # gnss | crack | inclinometer | rain
    label: str
    v_uniform: float  # mm/day
    base: float  # value at the story's start


class _Clock:
    """Simulated time ``speed`` × faster than real time; infinite speed never waits."""

    def __init__(self, start: datetime, speed: float, stop: threading.Event) -> None:
        self.start, self.speed, self.stop = start, speed, stop
        self.began = time.monotonic()

    def wait_until(self, at: datetime) -> bool:
        """False once the story is stopped."""
        if not math.isinf(self.speed):
            due = self.began + (at - self.start).total_seconds() / self.speed
            self.stop.wait(max(0.0, due - time.monotonic()))
        return not self.stop.is_set()


Action = Callable[[datetime], None]


def run(
    factory: sessionmaker[Session],
    *,
    speed: float = math.inf,
    start: datetime | None = None,
    on_step: Callable[[Step], None] | None = None,
    timeline: Timeline = Timeline(),
    publishing: workflow.Publishing | None = None,
    window_days: int = 30,
    auto_propose: str = "yellow",
    stop: threading.Event | None = None,
) -> StoryResult:
    """Play the landslide story against the database behind ``factory`` (the demo district,
    its devices and risk points seeded). ``start`` defaults to ``timeline.hours`` before now;
    either way it is taken to the hour, so the story's hours are the roll-ups' hours.
    ``auto_propose`` is the level at which the analytics propose a warning; the story is about
    one, so "none" plays as "yellow"."""
    if not speed > 0:
        raise ValueError("speed must be positive")
    begin = (start or utcnow() - timedelta(hours=timeline.hours)).astimezone(UTC)
    story = _Story(
        factory,
        timeline,
        begin.replace(minute=0, second=0, microsecond=0),
        publishing or workflow.Publishing(),
        window_days,
        auto_propose if auto_propose in LEVEL_RANK and auto_propose != "none" else "yellow",
        on_step,
    )
    return story.play(_Clock(story.start, speed, stop or threading.Event()))


def start_background(
    factory: sessionmaker[Session],
    *,
    speed: float,
    on_step: Callable[[Step], None],
    publishing: workflow.Publishing | None = None,
    window_days: int = 30,
    auto_propose: str = "yellow",
) -> tuple[threading.Thread, threading.Event]:
    """The story in a daemon thread (what ``cityops demo --story landslide`` runs); set the
    returned event to stop it between two steps."""
    stop = threading.Event()

    def body() -> None:
        try:
            run(
                factory,
                speed=speed,
                on_step=on_step,
                publishing=publishing,
                window_days=window_days,
                auto_propose=auto_propose,
                stop=stop,
            )
        except StoryError as exc:
            on_step(Step(utcnow(), "story", f"故事未开始：{exc}"))
        except Exception:  # the demo keeps serving without its story
            log.exception("the landslide story failed")

    thread = threading.Thread(target=body, name="demo-story", daemon=True)
    thread.start()
    return thread, stop


class _Story:
    def __init__(
        self,
        factory: sessionmaker[Session],
        timeline: Timeline,
        start: datetime,
        publishing: workflow.Publishing,
        window_days: int,
        auto_propose: str,
        on_step: Callable[[Step], None] | None,
    ) -> None:
        self.factory = factory
        self.tl = timeline
        self.start = start
        self.end = start + timedelta(hours=timeline.hours)
        self.publishing = publishing
        self.window_days = window_days
        self.auto_propose = auto_propose
        self.on_step = on_step
        self.rng = random.Random("cityops-story:landslide")
        self.result = StoryResult(start, self.end)
        self.queue: list[tuple[datetime, int, Action]] = []
        self.seq = 0
        self.scheduled: set[str] = set()  # commander decisions waiting
        self.field_steps = 0  # household steps waiting
        self.calm = 0
        self.rain_total = 0.0
        self.point_id = 0
        self.evacuation_id: int | None = None
        self.monitors: list[_Monitor] = []
        self.gauge = "RG-1"
        self.commander = _Person("", ACTOR)
        self.fallback_worker = _Person("", ACTOR)
        self.saved_step: Any = None

    # --- the loop -----------------------------------------------------------------------------

    def play(self, clock: _Clock) -> StoryResult:
        self._prepare()
        self._watch_closely(self.start, True)
        try:
            self._backfill()
            for h in range(1, self.tl.hours + 1):
                self._at(self.start + h * HOUR, self._tick)
            self._loop(clock)
        finally:
            self._watch_closely(min(self.end, utcnow()), False)
        self._finish()
        return self.result

    def _loop(self, clock: _Clock) -> None:
        while self.queue:
            at, _seq, action = heapq.heappop(self.queue)
            if at > self.end:
                self._emit(self.end, "story", "故事时间已到，未完成的步骤不再执行")
                return
            if not clock.wait_until(at):
                self._emit(at, "story", "故事已停止")
                return
            action(at)

    def _at(self, at: datetime, action: Action) -> None:
        self.seq += 1
        heapq.heappush(self.queue, (at, self.seq, action))

    def _emit(self, at: datetime, kind: str, text: str) -> None:
        step = Step(at, kind, text)
        self.result.steps.append(step)
        if self.on_step is not None:
            self.on_step(step)

    @contextmanager
    def _tx(self, actor: audit.Actor) -> Iterator[Session]:
        with transaction(self.factory) as session:
            audit.set_actor(session, actor)
            yield session

    # --- set-up -------------------------------------------------------------------------------

    def _prepare(self) -> None:
        with self.factory() as session:
            point = session.scalar(select(RiskPoint).where(RiskPoint.code == SITE))
            if point is None:
                raise StoryError(
                    "老沟湾风险点未登记，请先载入演示风险点 / the LGW risk point is not seeded"
                )
            self.point_id = point.id
            self._check_fresh(session)
            self.monitors = self._monitors(session)
            self.gauge = next((m.label for m in self.monitors if m.kind == "rain"), self.gauge)
            self.commander = _commander(session)
            monitor = session.get(Person, point.monitor_id) if point.monitor_id else None
            name = monitor.name if monitor else "群测群防员"
            self.fallback_worker = _Person(name, audit.Actor("person", "", name))
        self._emit(
            self.start,
            "story",
            f"开始演示：{self.tl.hours} 小时的强降雨过程（{_local(self.start)} 起），"
            f"地点 义和镇太康村6组 老沟湾",
        )

    def _watch_closely(self, at: datetime, on: bool) -> None:
        """With a rainstorm forecast the centre analyses LGW's dense record hour by hour (the
        default daily step would see the acceleration a day late); afterwards it goes back to
        daily steps, which the noisy everyday feed needs."""
        with self._tx(ACTOR) as session:
            point = session.get(RiskPoint, self.point_id)
            assert point is not None
            settings = dict(point.settings or {})
            if on:
                self.saved_step = settings.get("step_h")
                settings["step_h"] = CLOSE_WATCH_STEP_H
            elif self.saved_step is None:
                settings.pop("step_h", None)
            else:
                settings["step_h"] = self.saved_step
            registry.update_point(session, point, {"settings": settings}, at)
        text = (
            f"强降雨预报：老沟湾启用加密研判（每 {CLOSE_WATCH_STEP_H:g} 小时）"
            if on
            else "过程结束：老沟湾恢复日常研判步长"
        )
        self._emit(at, "story", text)

    def _check_fresh(self, session: Session) -> None:
        if session.scalar(select(Warning.id).where(Warning.risk_point_id == self.point_id)):
            raise StoryError(
                "老沟湾已有预警记录，故事需要新的演示库 / LGW already has warnings; "
                "replay the story on a fresh demo database"
            )
        since = self.start - timedelta(days=self.tl.backfill_days)
        newest = session.scalar(
            select(func.max(Latest.ts))
            .join(Device, Device.id == Latest.device_id)
            .where(Device.site == SITE)
        )
        if newest is not None and newest >= _ms(since):
            raise StoryError(
                "老沟湾设备在故事时段内已有数据，故事需要新的演示库 / LGW devices already "
                "reported in the story's window; replay it on a fresh demo database"
            )

    def _monitors(self, session: Session) -> list[_Monitor]:
        out = []
        peak = self.tl.peak_h - 1.0
        for monitor, device in registry.monitors_of(session, self.point_id):
            vu = monitor.v_uniform or (0.1 if device.type_code == "crack" else 0.3)
            if device.type_code == "crack":
                base = CRACK_AT_PEAK_MM - self.tl.slope_mm(vu, peak)
            else:
                base = round(8.0 + 7.0 * self.rng.random(), 2)
            out.append(_Monitor(device.code, device.type_code, monitor.label, vu, base))
        inclinometers = session.scalars(
            select(Device.code).where(Device.site == SITE, Device.type_code == "inclinometer")
        )
        out += [_Monitor(code, "inclinometer", code, 0.3, 0.0) for code in inclinometers]
        return out

    # --- readings -----------------------------------------------------------------------------

    def _readings(self, since: datetime, until: datetime, step_min: int | None) -> list[Any]:
        """Every monitor's readings in (since, until]; ``step_min`` None: one an hour."""
        items: list[dict[str, Any]] = []
        for m in self.monitors:
            every = 60 if step_min is None else (15 if m.kind == "rain" else step_min)
            at = since + timedelta(minutes=every)
            while at <= until:
                items += self._values(m, at, every)
                at += timedelta(minutes=every)
        return items

    def _values(self, m: _Monitor, at: datetime, every: int) -> list[dict[str, Any]]:
        ts = _ms(at)
        if m.kind == "rain":
            return [_reading(m.device, "rain_mm", ts, self._rain(at, every))]
        s = self.tl.slope_mm(m.v_uniform, (at - self.start) / HOUR)
        if m.kind == "inclinometer":  # the borehole tilts a few hundredths of a degree a mm
            return [
                _reading(m.device, "tilt_x_deg", ts, 0.42 + 0.02 * s),
                _reading(m.device, "tilt_y_deg", ts, -0.18 + 0.008 * s),
            ]
        metric = "disp_mm" if m.kind == "gnss" else "crack_mm"
        return [_reading(m.device, metric, ts, m.base + s)]

    def _rain(self, at: datetime, every: int) -> float:
        """Rain in the ``every`` minutes up to ``at`` (a whole hour, or one quarter of it)."""
        hour = math.ceil((at - self.start) / HOUR)
        amount = self.tl.rain_mm(hour)
        if every >= 60 or amount == 0.0:
            return amount
        quarter = int(((at - self.start) % HOUR) / timedelta(minutes=15)) - 1
        split = PEAK_QUARTERS if hour == self.tl.peak_h else QUARTERS[hour % len(QUARTERS)]
        return amount * split[quarter]

    def _backfill(self) -> None:
        since = self.start - timedelta(days=self.tl.backfill_days)
        items = self._readings(since, self.start, None)
        with self._tx(ACTOR) as session:
            ingest(session, items, max(self.start, utcnow()))
            self._evaluate(session, self.start)
        gnss = sum(1 for m in self.monitors if m.kind == "gnss")
        self._emit(
            self.start,
            "data",
            f"回填 {self.tl.backfill_days:g} 天监测数据 {len(items)} 条（GNSS {gnss} 台、裂缝计、"
            "测斜仪、雨量计）：坡体匀速蠕变，无降雨",
        )

    # --- each simulated hour ------------------------------------------------------------------

    def _tick(self, at: datetime) -> None:
        hour = round((at - self.start) / HOUR)
        items = self._readings(at - HOUR, at, 10)
        with self._tx(ACTOR) as session:
            # Received "now" in real time, although stamped in the story's past: the worker's
            # no-data rule judges silence by when readings arrive, and must not see the
            # story's devices fall silent while the accelerated clock catches up.
            received = max(at, utcnow())
            alarms = _raised(session, ingest(session, items, received).alarms)
            level, detail = self._evaluate(session, at)
            proposals = self._analytics_events(session, at)
        rain = self.tl.rain_mm(hour)
        self.rain_total += rain
        weather = (
            f"雨量计 {self.gauge} 1 小时雨量 {rain:.1f} mm（累计 {self.rain_total:.0f} mm）"
            if rain
            else "无降雨"
        )
        self._emit(at, "data", f"{weather}；{detail}；研判 {LEVEL_ZH[level]}")
        for text in alarms:
            self._emit(at, "data", f"报警：{text}")
        for text in proposals:
            self._emit(at, "warning", text)
        self._review(at, level)

    def _evaluate(self, session: Session, at: datetime) -> tuple[str, str]:
        point = session.get(RiskPoint, self.point_id)
        assert point is not None
        before = point.level
        evaluation = analysis.evaluate(session, point, at, self.window_days)
        analysis.apply(session, evaluation, at, self.auto_propose)
        level = point.level
        self.result.evaluations.append((at, level))
        if not self.result.levels or self.result.levels[-1] != level:
            self.result.levels.append(level)
        if level != before and at > self.start:
            reasons = "；".join(point.level_reasons)
            self._emit(at, "level", f"研判等级 {LEVEL_ZH[before]} → {LEVEL_ZH[level]}：{reasons}")
        return level, _worst(evaluation)

    def _analytics_events(self, session: Session, at: datetime) -> list[str]:
        rows = session.execute(
            select(WarningEvent.action, WarningEvent.level, WarningEvent.data, Warning.code)
            .join(Warning, Warning.id == WarningEvent.warning_id)
            .where(
                Warning.risk_point_id == self.point_id,
                WarningEvent.at == at,
                WarningEvent.who_kind == "system",
            )
            .order_by(WarningEvent.id)
        ).all()
        out = []
        for action, level, data, code in rows:
            if action == "proposed":
                self.result.warning = code
                self._state("proposed", at)
                out.append(f"预警模型建议发布{LEVEL_ZH[level]}预警 {code}，待指挥长确认")
            elif action == "raised":
                out.append(f"预警模型将待确认的预警 {code} 提高为{LEVEL_ZH[level]}")
            elif action == "upgrade_suggested":
                suggested = LEVEL_ZH.get(str(data.get("suggested")), "")
                out.append(f"预警模型建议将预警 {code} 升级为{suggested}")
        return out

    def _state(self, state: str, at: datetime) -> None:
        if not self.result.states or self.result.states[-1] != state:
            self.result.states.append(state)
        self.result.timings.setdefault(state, at)

    # --- the commander ------------------------------------------------------------------------

    def _review(self, at: datetime, level: str) -> None:
        """What the commander does about the newest evaluation (after a pause)."""
        rank = LEVEL_RANK[level]
        self.calm = self.calm + 1 if rank < LEVEL_RANK[self.auto_propose] else 0
        with self.factory() as session:
            warning = workflow.open_warning(session, self.point_id)
            state, current = (warning.state, warning.level) if warning else (None, "none")
        hour = round((at - self.start) / HOUR)
        if state == "proposed":
            self._decide("confirm", at + _minutes(self.tl.decide_min), self._confirm)
        elif state == "issued" and rank > LEVEL_RANK[current]:
            self._decide("update", at + _minutes(self.tl.update_min), self._update)
        elif (
            state == "issued"
            and self.calm >= self.tl.calm_evaluations
            and self.field_steps == 0
            and self.tl.rain_mm(hour) == 0.0
        ):
            self._decide("lift", at + _minutes(self.tl.lift_min), self._lift)

    def _decide(self, name: str, at: datetime, action: Action) -> None:
        if name in self.scheduled:
            return
        self.scheduled.add(name)

        def act(when: datetime) -> None:
            self.scheduled.discard(name)
            action(when)

        self._at(at, act)

    def _confirm(self, at: datetime) -> None:
        with self._tx(self.commander.actor) as session:
            warning = workflow.open_warning(session, self.point_id)
            point = session.get(RiskPoint, self.point_id)
            if warning is None or point is None or warning.state != "proposed":
                return
            # The commander reads the newest evaluation, not only the proposal.
            level = point.level if LEVEL_RANK[point.level] > LEVEL_RANK[warning.level] else None
            workflow.confirm(
                session, warning, self.commander.who, at, level=level, note="会商研判，同意发布"
            )
            code, final = warning.code, warning.level
        self._state("confirmed", at)
        self._emit(
            at, "warning", f"区指挥长 {self.commander.name} 确认{LEVEL_ZH[final]}预警 {code}"
        )
        self._at(at + _minutes(self.tl.issue_min), self._issue)

    def _issue(self, at: datetime) -> None:
        with self._tx(self.commander.actor) as session:
            warning = workflow.open_warning(session, self.point_id)
            if warning is None or warning.state != "confirmed":
                return
            workflow.issue(
                session, warning, self.commander.who, at, self.publishing, note="经指挥长签发"
            )
            code, level = warning.code, warning.level
            evac = evacuation.of_warning(session, warning)
            point = session.get(RiskPoint, self.point_id)
            assert point is not None
            told = f"{point.households} 户 {point.persons} 人"
        self._state("issued", at)
        self._emit(
            at,
            "warning",
            f"发布{LEVEL_ZH[level]}预警 {code}（CAP Alert），短信通知责任人和风险区 {told}",
        )
        if evac is not None:
            self._open(at, evac.id)

    def _update(self, at: datetime) -> None:
        with self._tx(self.commander.actor) as session:
            warning = workflow.open_warning(session, self.point_id)
            point = session.get(RiskPoint, self.point_id)
            if warning is None or point is None or warning.state != "issued":
                return
            if LEVEL_RANK[point.level] <= LEVEL_RANK[warning.level]:
                return  # the level fell back while the commander conferred
            had = evacuation.of_warning(session, warning) is not None
            level = point.level
            workflow.update(
                session,
                warning,
                self.commander.who,
                at,
                self.publishing,
                note=f"监测研判升级为{LEVEL_ZH[level]}：{'；'.join(point.level_reasons[:2])}",
                level=level,
            )
            evac = evacuation.of_warning(session, warning)
            code = warning.code
        self._emit(
            at,
            "warning",
            f"区指挥长 {self.commander.name} 将预警 {code} 升级为{LEVEL_ZH[level]}（CAP Update）",
        )
        if evac is not None and not had:
            self._open(at, evac.id)

    def _lift(self, at: datetime) -> None:
        with self._tx(self.commander.actor) as session:
            warning = workflow.open_warning(session, self.point_id)
            if warning is None or warning.state != "issued":
                return
            workflow.lift(
                session,
                warning,
                self.commander.who,
                at,
                self.publishing,
                note="降雨已停止，坡体变形趋缓，经专家会商解除预警",
            )
            evac = evacuation.of_warning(session, warning)
            record = dict(evac.record) if evac is not None else {}
            code = warning.code
        self._state("lifted", at)
        self.result.evacuation = record
        self._emit(at, "warning", f"区指挥长 {self.commander.name} 解除预警 {code}（CAP Cancel）")
        if record:
            self.result.timings["evacuation_closed"] = at
            self._emit(
                at, "evacuation", f"避险转移结束：{_summary(record['by_status'], final=True)}"
            )

    # --- the field ----------------------------------------------------------------------------

    def _open(self, at: datetime, evacuation_id: int) -> None:
        """Plan every household's way out, worker by worker, one household after another."""
        self.evacuation_id = evacuation_id
        self.result.timings["evacuation_opened"] = at
        with self.factory() as session:
            evac = evacuation.get(session, evacuation_id)
            tasks = evacuation.tasks(session, evac)
        everyone = [h for t in tasks for h in t["households"]]
        refuser, relatives = _who_hesitates(everyone)
        self._emit(
            at,
            "evacuation",
            f"启动避险转移：{len(everyone)} 户 {sum(h['persons'] for h in everyone)} 人，"
            f"网格员 {len(tasks)} 名逐户通知",
        )
        for task in tasks:
            worker = self._worker(task)
            for i, h in enumerate(task["households"]):
                told = at + _minutes(5 + 4 * i)
                self._plan_household(
                    h, worker, told, h["household"] == refuser, h["household"] in relatives
                )

    def _worker(self, task: dict[str, Any]) -> _Person:
        if task["worker"] is None:
            return self.fallback_worker
        name = str(task["worker_name"])
        return _Person(name, audit.Actor("person", "", name))

    def _plan_household(
        self, h: dict[str, Any], worker: _Person, told: datetime, refuses: bool, relatives: bool
    ) -> None:
        how = "电话通知" if h["phone"] else "上门通知"
        steps: list[tuple[datetime, str, str]] = [(told, "notified", how)]
        if refuses:
            steps += [
                (told + _minutes(15), "refused", "老人不愿离开，担心家中牲畜无人照看"),
                (told + _minutes(105), "evacuated", "村干部和网格员再次上门劝说，同意转移"),
                (told + _minutes(135), "sheltered", ""),
            ]
        elif relatives:
            steps.append((told + _minutes(self.rng.randint(20, 45)), "evacuated", "投亲靠友"))
        else:
            out = told + _minutes(self.rng.randint(15, 45))
            helped = "网格员协助老人、儿童及行动不便者转移" if h["vulnerable"] else ""
            steps += [
                (out, "evacuated", helped),
                (out + _minutes(self.rng.randint(20, 40)), "sheltered", ""),
            ]
        for when, status, note in steps:
            self.field_steps += 1
            self._at(when, self._status(h, status, worker, note))

    def _status(self, h: dict[str, Any], status: str, worker: _Person, note: str) -> Action:
        def act(at: datetime) -> None:
            self.field_steps -= 1
            shelter, by_status = self._set_status(at, h, status, worker, note)
            where = f"，安置于{shelter[1]}" if shelter else ""
            extra = f"（{note}）" if note else ""
            self._emit(
                at,
                "evacuation",
                f"网格员 {worker.name}：{h['head_name']}户（{h['persons']} 人）"
                f"{STATUS_ZH[status]}{where}{extra}",
            )
            at_home = sum(by_status[s]["persons"] for s in AT_HOME)
            if at_home == 0 and "everyone_out" not in self.result.timings:
                self.result.timings["everyone_out"] = at
                self._emit(
                    at, "evacuation", f"风险区内已无滞留人员：{_summary(by_status, final=False)}"
                )

        return act

    def _set_status(
        self, at: datetime, h: dict[str, Any], status: str, worker: _Person, note: str
    ) -> tuple[tuple[str, str] | None, dict[str, dict[str, int]]]:
        """One household's new status, as the grid worker enters it on the phone; returns the
        shelter (code, name) it went to and the evacuation's counts by status."""
        assert self.evacuation_id is not None
        with self._tx(worker.actor) as session:
            evac = evacuation.get(session, self.evacuation_id)
            shelter = (
                _shelter_with_room(session, evac, h["persons"]) if status == "sheltered" else None
            )
            evacuation.set_status(
                session,
                evac,
                h["household"],
                status,
                worker.name,
                at,
                shelter_code=shelter[0] if shelter else None,
                note=note,
                key=f"story:{evac.id}:{h['household']}:{status}",
            )
            return shelter, evacuation.counts(session, evac.id)

    def _finish(self) -> None:
        self.result.cap = self._cap_messages()
        levels = " → ".join(LEVEL_ZH[x] for x in self.result.levels)
        self._emit(self.end, "story", f"演示结束：研判等级 {levels}")

    def _cap_messages(self) -> list[tuple[str, str]]:
        if self.result.warning is None:
            return []
        with self.factory() as session:
            rows = session.execute(
                select(CapMessage.msg_type, CapMessage.level)
                .join(Warning, Warning.id == CapMessage.warning_id)
                .where(Warning.code == self.result.warning)
                .order_by(CapMessage.id)
            )
            return [(msg_type, level) for msg_type, level in rows]


# --- helpers ------------------------------------------------------------------------------------


def _ms(at: datetime) -> int:
    return int(at.timestamp() * 1000)


def _reading(device: str, metric: str, ts: int, value: float) -> dict[str, Any]:
    # A tenth of a micrometre: rounding must not add noise to a creep of 0.01 mm an hour.
    return {"device": device, "metric": metric, "ts": ts, "value": round(value, 4)}


def _minutes(n: float) -> timedelta:
    return timedelta(minutes=n)


def _local(at: datetime) -> str:
    return f"{at.astimezone(CST):%m-%d %H:%M}"


def _worst(evaluation: analysis.Evaluation) -> str:
    """The monitor moving fastest against its steady creep, in words."""
    angles = [
        (r.angle_now_deg, label, r)
        for label, r in evaluation.displacements.items()
        if r.angle_now_deg is not None
    ]
    if not angles:
        return "位移数据不足"
    angle, label, r = max(angles, key=lambda a: a[0])
    what = "裂缝宽度" if label.startswith("CRK") else "累计位移"
    moved = f"{what} {float(r.s_mm[-1]):.2f} mm，" if len(r.s_mm) else ""
    return f"{label} {moved}切线角 {angle:.1f}°"


def _raised(session: Session, alarm_ids: list[int]) -> list[str]:
    """The alarms these readings raised, in words. Cleared ones are left out: until the story
    catches up with real time the worker finds the LGW stations silent and the story's next
    readings clear that again, which is no news."""
    if not alarm_ids:
        return []
    rows = session.execute(
        select(AlarmRule.name, Alarm.source)
        .join(AlarmRule, AlarmRule.id == Alarm.rule_id)
        .where(Alarm.id.in_(alarm_ids), Alarm.condition == "active")
        .order_by(Alarm.id)
    )
    return [f"{name}（{source.split(':', 1)[-1]}）" for name, source in rows]


def _commander(session: Session) -> _Person:
    """The district commander of the demo (the person behind the demo-commander account)."""
    row = session.execute(
        select(Person.id, Person.name)
        .join(Unit, Unit.id == Person.unit_id)
        .join(PersonRole, PersonRole.person_id == Person.id)
        .where(Unit.code == f"DC-{DISTRICT_CODE}", PersonRole.role == Role.district_commander.value)
        .order_by(Person.code)
        .limit(1)
    ).first()
    if row is None:
        raise StoryError("演示辖区没有区指挥长 / the demo district has no district commander")
    account = session.scalar(select(Account.id).where(Account.person_id == row.id))
    return _Person(row.name, audit.Actor("person", str(account or ""), row.name))


def _who_hesitates(households: list[dict[str, Any]]) -> tuple[str | None, set[str]]:
    """The household that refuses at first (elderly, small) and the two that go to relatives
    (larger families without anyone who needs help), chosen by code so every run agrees."""
    ordered = sorted(households, key=lambda h: h["household"])
    refuser = next(
        (h["household"] for h in ordered if h["vulnerable"].get("elderly") and h["persons"] <= 3),
        ordered[0]["household"] if ordered else None,
    )
    families = [
        h["household"]
        for h in ordered
        if h["household"] != refuser and h["persons"] >= 3 and not h["vulnerable"]
    ]
    return refuser, set(families[-2:])


def _shelter_with_room(session: Session, evac: Evacuation, persons: int) -> tuple[str, str] | None:
    shelters = registry.shelters_of(session, evac.risk_point_id)
    used = registry.occupancy(session, [s.id for s in shelters])
    for s in shelters:
        if used.get(s.id, 0) + persons <= s.capacity:
            return s.code, s.name
    return None


def _summary(by_status: dict[str, dict[str, int]], *, final: bool) -> str:
    """Persons by where they are; "evacuated" is on the way while the evacuation runs and
    with relatives once it is closed."""
    households = sum(v["households"] for v in by_status.values())
    persons = sum(v["persons"] for v in by_status.values())
    left = "投亲靠友" if final else "转移途中或投亲靠友"
    at_home = sum(by_status[s]["persons"] for s in AT_HOME)
    return (
        f"共 {households} 户 {persons} 人；安置 {by_status['sheltered']['persons']} 人，"
        f"{left} {by_status['evacuated']['persons']} 人，滞留 {at_home} 人"
    )
