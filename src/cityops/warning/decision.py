"""Combine the evidence of a risk point's monitors and rain gauges into one warning level, with
the reasons in words (zh-CN for the commander, English for the record).

Evidence
--------
- **Displacement level** — the highest *persisted* tangent-angle level across the monitors
  (:mod:`cityops.warning.displacement`); between monitors at that level, the one with the
  largest current angle is named in the reason.
- **Rain class** per gauge (:mod:`cityops.warning.rainfall`), the worst across gauges:

  ==========  ============================================================================
  class       when
  ==========  ============================================================================
  extreme     current event at or above Caine (1980), or 24 h rain ≥ 100 mm
  heavy       current event at or above Guzzetti et al. (2008), or 24 h rain ≥ 50 mm
  none        otherwise
  ==========  ============================================================================

- **Inverse-velocity forecast** (Fukuzono 1985) of a monitor whose persisted level is at
  least ``fit_min_level`` (yellow: the method only applies to accelerating creep) and whose
  fit has R² ≥ 0.8.

Default decision table
----------------------
==================  ========  ========  ========
displacement        no rain   heavy     extreme
==================  ========  ========  ========
red                 red       red       red
orange              orange    red       red
yellow              yellow    yellow    orange
blue                blue      blue      yellow
none                none      none      blue
==================  ========  ========  ========

Then the forecast can only raise the level: a predicted failure less than 24 h ahead makes it
at least orange, less than 6 h ahead red. Rain alone never goes beyond blue: without movement
it is a reason to watch the slope, not to evacuate it. Every number and every cell is a field
of :class:`DecisionTable`, so a district can substitute its own.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from cityops.warning.displacement import RANK, DisplacementResult
from cityops.warning.rainfall import RainEvent, RainfallResult

RAIN_CLASSES = ("none", "heavy", "extreme")
RAIN_RANK = {name: i for i, name in enumerate(RAIN_CLASSES)}
LEVEL_ZH = {"none": "无", "blue": "蓝色", "yellow": "黄色", "orange": "橙色", "red": "红色"}
RAIN_ZH = {"none": "无强降雨", "heavy": "强降雨", "extreme": "极端降雨"}


def _default_combination() -> dict[str, dict[str, str]]:
    return {
        "red": {"none": "red", "heavy": "red", "extreme": "red"},
        "orange": {"none": "orange", "heavy": "red", "extreme": "red"},
        "yellow": {"none": "yellow", "heavy": "yellow", "extreme": "orange"},
        "blue": {"none": "blue", "heavy": "blue", "extreme": "yellow"},
        "none": {"none": "none", "heavy": "none", "extreme": "blue"},
    }


def _default_names() -> dict[str, str]:
    return {"caine": "Caine", "guzzetti": "Guzzetti"}


@dataclass(frozen=True)
class DecisionTable:
    # combination[displacement level][rain class] → level; a missing cell keeps the
    # displacement level.
    combination: dict[str, dict[str, str]] = field(default_factory=_default_combination)
    heavy_thresholds: tuple[str, ...] = ("guzzetti",)
    extreme_thresholds: tuple[str, ...] = ("caine",)
    heavy_24h_mm: float = 50.0
    extreme_24h_mm: float = 100.0
    lead_orange_h: float = 24.0  # forecast failure sooner than this → at least orange
    lead_red_h: float = 6.0  # … sooner than this → red
    min_fit_r2: float = 0.8
    fit_min_level: str = "yellow"
    threshold_names: dict[str, str] = field(default_factory=_default_names)


DEFAULT_TABLE = DecisionTable()


@dataclass
class Decision:
    level: str
    reasons: list[str]  # zh-CN
    evidence: list[dict[str, Any]]
    reasons_en: list[str] = field(default_factory=list)
    displacement_level: str = "none"
    rain_class: str = "none"

    def as_dict(self) -> dict[str, Any]:
        return {
            "level": self.level,
            "reasons": list(self.reasons),
            "reasons_en": list(self.reasons_en),
            "displacement_level": self.displacement_level,
            "rain_class": self.rain_class,
            "evidence": list(self.evidence),
        }


@dataclass
class _Reasons:
    zh: list[str] = field(default_factory=list)
    en: list[str] = field(default_factory=list)

    def add(self, zh: str, en: str) -> None:
        self.zh.append(zh)
        self.en.append(en)


def decide(
    displacements: Mapping[str, DisplacementResult],
    rainfall: Mapping[str, RainfallResult],
    table: DecisionTable = DEFAULT_TABLE,
) -> Decision:
    """The warning level of one risk point from its monitors (code → result) and gauges."""
    reasons = _Reasons()
    evidence = [_displacement_evidence(c, r) for c, r in displacements.items()]
    classes = {code: rain_class(r, table) for code, r in rainfall.items()}
    evidence += [_rain_evidence(c, r, classes[c]) for c, r in rainfall.items()]
    disp_level, monitor = _worst_monitor(displacements)
    if monitor is not None:
        _displacement_reason(monitor, displacements[monitor], reasons)
    rain, gauge = _worst_gauge(rainfall, classes)
    if gauge is not None:
        _rain_reasons(gauge, rainfall[gauge], table, reasons)
    level = table.combination.get(disp_level, {}).get(rain, disp_level)
    if RANK.get(level, 0) > RANK[disp_level]:
        _combination_reason(disp_level, rain, level, reasons)
    level, fit_evidence = _forecast(displacements, level, table, reasons)
    evidence += fit_evidence
    if not reasons.zh:
        _quiet_reason(displacements, rainfall, reasons)
    return Decision(level, reasons.zh, evidence, reasons.en, disp_level, rain)


# -- displacement --------------------------------------------------------------------------


def _worst_monitor(displacements: Mapping[str, DisplacementResult]) -> tuple[str, str | None]:
    if not displacements:
        return "none", None

    def key(code: str) -> tuple[int, float]:
        r = displacements[code]
        angle = r.angle_now_deg if r.angle_now_deg is not None else -math.inf
        return RANK.get(r.level, 0), angle

    code = max(displacements, key=key)
    level = displacements[code].level if displacements[code].level in RANK else "none"
    return level, (code if level != "none" else None)


def _displacement_reason(code: str, r: DisplacementResult, reasons: _Reasons) -> None:
    held_zh, held_en = _duration(r.level_held_h)
    if r.angle_now_deg is None:
        reasons.add(
            f"{code} 位移{LEVEL_ZH[r.level]}预警已持续 {held_zh}",
            f"{code} displacement {r.level} for {held_en}",
        )
        return
    reasons.add(
        f"{code} 切线角 {r.angle_now_deg:.1f}° 已持续 {held_zh}（{LEVEL_ZH[r.level]}）",
        f"{code} tangent angle {r.angle_now_deg:.1f}° for {held_en} ({r.level})",
    )


def _displacement_evidence(code: str, r: DisplacementResult) -> dict[str, Any]:
    return {
        "kind": "displacement",
        "monitor": code,
        "level": r.level,
        "angle_deg": r.angle_now_deg,
        "since_ms": r.level_since_ms,
        "held_h": r.level_held_h,
        "v_uniform": r.v_uniform,
        "velocity_mm_d": float(r.v_mm_d[-1]) if len(r.v_mm_d) else None,
        "notes": list(r.notes),
    }


# -- rain ----------------------------------------------------------------------------------


def rain_class(r: RainfallResult, table: DecisionTable = DEFAULT_TABLE) -> str:
    """none | heavy | extreme for one gauge (see the module docstring)."""
    t24 = r.total_24h
    if _above_any(r.current_event, table.extreme_thresholds) or _at_least(
        t24, table.extreme_24h_mm
    ):
        return "extreme"
    if _above_any(r.current_event, table.heavy_thresholds) or _at_least(t24, table.heavy_24h_mm):
        return "heavy"
    return "none"


def _above_any(event: RainEvent | None, names: tuple[str, ...]) -> bool:
    return event is not None and any(event.above.get(n, False) for n in names)


def _at_least(value: float | None, limit: float) -> bool:
    return value is not None and value >= limit


def _worst_gauge(
    rainfall: Mapping[str, RainfallResult], classes: Mapping[str, str]
) -> tuple[str, str | None]:
    if not rainfall:
        return "none", None

    def key(code: str) -> tuple[int, float]:
        t72 = rainfall[code].total_72h
        return RAIN_RANK[classes[code]], t72 if t72 is not None else -1.0

    code = max(rainfall, key=key)
    return classes[code], (code if classes[code] != "none" else None)


def _rain_reasons(code: str, r: RainfallResult, table: DecisionTable, reasons: _Reasons) -> None:
    cls = rain_class(r, table)
    names = table.extreme_thresholds if cls == "extreme" else table.heavy_thresholds
    above = [n for n in names if _above_any(r.current_event, (n,))]
    if above:
        amount_zh, amount_en = _rain_amount(r)
        shown = "、".join(table.threshold_names.get(n, n) for n in above)
        shown_en = ", ".join(table.threshold_names.get(n, n) for n in above)
        reasons.add(
            f"{code}：{amount_zh}，超过 {shown} 阈值", f"{code}: {amount_en} above {shown_en}"
        )
    limit = table.extreme_24h_mm if cls == "extreme" else table.heavy_24h_mm
    t24 = r.total_24h
    if t24 is not None and t24 >= limit:
        reasons.add(
            f"{code}：24 小时降雨 {t24:.0f} mm，达到 {limit:g} mm（{RAIN_ZH[cls]}）",
            f"{code}: 24 h rain {t24:.0f} mm ≥ {limit:g} mm ({cls})",
        )


def _rain_amount(r: RainfallResult) -> tuple[str, str]:
    if r.total_72h is not None:
        return f"72 小时降雨 {r.total_72h:.0f} mm", f"72 h rain {r.total_72h:.0f} mm"
    total = r.current_event.total_mm if r.current_event else 0.0
    return f"本次降雨 {total:.0f} mm", f"event rain {total:.0f} mm"


def _rain_evidence(code: str, r: RainfallResult, cls: str) -> dict[str, Any]:
    e = r.current_event
    return {
        "kind": "rainfall",
        "gauge": code,
        "class": cls,
        "total_1h_mm": r.total_1h,
        "total_24h_mm": r.total_24h,
        "total_72h_mm": r.total_72h,
        "antecedent_mm": r.antecedent_mm,
        "event": e.as_dict() if e else None,
        "above": dict(r.above),
        "notes": list(r.notes),
    }


def _combination_reason(disp: str, rain: str, level: str, reasons: _Reasons) -> None:
    if disp == "none":
        reasons.add(f"{RAIN_ZH[rain]}，综合为{LEVEL_ZH[level]}", f"{rain} rain alone → {level}")
        return
    reasons.add(
        f"位移{LEVEL_ZH[disp]}叠加{RAIN_ZH[rain]}，综合为{LEVEL_ZH[level]}",
        f"{disp} displacement with {rain} rain → {level}",
    )


# -- inverse-velocity forecast ---------------------------------------------------------------


def _forecast(
    displacements: Mapping[str, DisplacementResult],
    level: str,
    table: DecisionTable,
    reasons: _Reasons,
) -> tuple[str, list[dict[str, Any]]]:
    usable = {
        code: r
        for code, r in displacements.items()
        if r.fit is not None
        and r.fit.lead_h is not None
        and math.isfinite(r.fit.lead_h)
        and r.fit.r2 >= table.min_fit_r2
        and RANK.get(r.level, 0) >= RANK.get(table.fit_min_level, 0)
    }
    evidence = [_fit_evidence(code, r) for code, r in usable.items()]
    if not usable:
        return level, evidence
    code = min(usable, key=lambda c: _lead(usable[c]))
    lead, r2 = _lead(usable[code]), _r2(usable[code])
    raised = "red" if lead < table.lead_red_h else "orange" if lead < table.lead_orange_h else None
    if raised is None:
        return level, evidence
    if lead <= 0:
        reasons.add(
            f"{code} 反速度法预测的失稳时间已到（R²={r2:.2f}）",
            f"{code} inverse velocity: predicted failure time has passed (R² {r2:.2f})",
        )
    else:
        reasons.add(
            f"{code} 反速度法预测 {lead:.0f} 小时后失稳（R²={r2:.2f}）",
            f"{code} inverse velocity predicts failure in {lead:.0f} h (R² {r2:.2f})",
        )
    return max(level, raised, key=lambda x: RANK.get(x, 0)), evidence


def _lead(r: DisplacementResult) -> float:
    return r.fit.lead_h if r.fit is not None and r.fit.lead_h is not None else math.inf


def _r2(r: DisplacementResult) -> float:
    return r.fit.r2 if r.fit is not None else 0.0


def _fit_evidence(code: str, r: DisplacementResult) -> dict[str, Any]:
    return {"kind": "inverse_velocity", "monitor": code} | (r.fit.as_dict() if r.fit else {})


# -- wording -------------------------------------------------------------------------------


def _duration(hours: float | None) -> tuple[str, str]:
    if hours is None:
        return "未知时长", "an unknown time"
    if hours < 1:
        minutes = max(hours * 60, 0.0)
        return f"{minutes:.0f} 分钟", f"{minutes:.0f} min"
    return f"{hours:.0f} 小时", f"{hours:.0f} h"


def _quiet_reason(
    displacements: Mapping[str, DisplacementResult],
    rainfall: Mapping[str, RainfallResult],
    reasons: _Reasons,
) -> None:
    if not displacements and not rainfall:
        reasons.add("无监测数据", "no monitoring data")
    else:
        reasons.add(
            "各监测点与雨量站均未达到预警条件", "no monitor or gauge meets a warning condition"
        )
