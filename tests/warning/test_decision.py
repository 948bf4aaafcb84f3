"""The decision table: every row, the forecast escalation, the reasons in both languages, and
that bad sensors never make red."""

from __future__ import annotations

import json

import numpy as np
import pytest

from cityops.warning import decision as dc
from cityops.warning import displacement as d
from cityops.warning import rainfall as rf

HOUR = 3_600_000
DAY = 86_400_000
T0 = 1_700_000_000_000


def disp(
    level: str,
    angle: float | None = 60.0,
    held_h: float = 6.0,
    fit: d.InverseVelocityFit | None = None,
) -> d.DisplacementResult:
    now = T0 + 30 * DAY
    empty_i, empty_f = np.zeros(0, np.int64), np.zeros(0)
    return d.DisplacementResult(
        t_ms=empty_i,
        s_mm=empty_f,
        v_t_ms=empty_i,
        v_mm_d=empty_f,
        a_t_ms=empty_i,
        a_mm_d2=empty_f,
        v_uniform=0.1,
        angle_deg=empty_f,
        levels=[],
        level=level,
        level_since_ms=now - round(held_h * HOUR),
        fit=fit,
        notes=[],
        level_held_h=held_h,
        angle_now_deg=angle,
        now_ms=now,
    )


def fit(lead_h: float, r2: float = 0.95) -> d.InverseVelocityFit:
    now = T0 + 30 * DAY
    return d.InverseVelocityFit(
        a=-0.1,
        b=1.0,
        r2=r2,
        points=12,
        start_ms=now - 5 * DAY,
        end_ms=now,
        failure_ms=now + round(lead_h * HOUR),
        lead_h=lead_h,
    )


def rain(
    t24: float | None = 10.0,
    t72: float | None = 20.0,
    guzzetti: bool = False,
    caine: bool = False,
) -> rf.RainfallResult:
    above = {"caine": caine, "guzzetti": guzzetti}
    event = rf.RainEvent(
        start_ms=T0,
        end_ms=T0 + 10 * HOUR,
        duration_h=10.0,
        total_mm=t24 or 0.0,
        intensity_mm_h=(t24 or 0.0) / 10,
        peak_1h_mm=5.0,
        ratio={"caine": 2.0 if caine else 0.5, "guzzetti": 2.0 if guzzetti else 0.5},
        above=above,
    )
    return rf.RainfallResult(
        now_ms=T0 + 12 * HOUR,
        totals_mm={"1h": 0.0, "24h": t24, "72h": t72},
        daily_mm=[],
        antecedent_mm=None,
        events=[event],
        current_event=event,
        above=above,
        notes=[],
    )


RAIN = {
    "none": rain(),
    "heavy": rain(t72=186.0, guzzetti=True),
    "extreme": rain(t72=250.0, guzzetti=True, caine=True),
}
TABLE = [
    ("red", "none", "red"),
    ("red", "heavy", "red"),
    ("red", "extreme", "red"),
    ("orange", "none", "orange"),
    ("orange", "heavy", "red"),
    ("orange", "extreme", "red"),
    ("yellow", "none", "yellow"),
    ("yellow", "heavy", "yellow"),
    ("yellow", "extreme", "orange"),
    ("blue", "none", "blue"),
    ("blue", "heavy", "blue"),
    ("blue", "extreme", "yellow"),
    ("none", "none", "none"),
    ("none", "heavy", "none"),
    ("none", "extreme", "blue"),
]


@pytest.mark.parametrize(("disp_level", "rain_class", "expected"), TABLE)
def test_decision_table(disp_level: str, rain_class: str, expected: str) -> None:
    out = dc.decide({"GNSS-3": disp(disp_level)}, {"RG-1": RAIN[rain_class]})
    assert out.level == expected
    assert out.displacement_level == disp_level and out.rain_class == rain_class
    assert len(out.reasons) == len(out.reasons_en) >= 1


def test_rain_class_from_24h_totals() -> None:
    assert dc.rain_class(rain(t24=49.0)) == "none"
    assert dc.rain_class(rain(t24=50.0)) == "heavy"
    assert dc.rain_class(rain(t24=100.0)) == "extreme"
    assert dc.rain_class(rain(t24=None, guzzetti=True)) == "heavy"
    table = dc.DecisionTable(heavy_24h_mm=30.0, extreme_24h_mm=40.0)
    assert dc.rain_class(rain(t24=35.0), table) == "heavy"


def test_reason_text() -> None:
    out = dc.decide({"GNSS-3": disp("orange", angle=83.1, held_h=6.0)}, {"RG-1": RAIN["heavy"]})
    assert out.level == "red"
    assert "GNSS-3 切线角 83.1° 已持续 6 小时（橙色）" in out.reasons
    assert any("72 小时降雨 186 mm，超过 Guzzetti 阈值" in r for r in out.reasons)
    assert "位移橙色叠加强降雨，综合为红色" in out.reasons
    assert "GNSS-3 tangent angle 83.1° for 6 h (orange)" in out.reasons_en
    assert any("72 h rain 186 mm above Guzzetti" in r for r in out.reasons_en)


def test_reason_for_24h_rain_and_short_durations() -> None:
    out = dc.decide({"CR-1": disp("yellow", angle=50.0, held_h=0.5)}, {"RG-2": rain(t24=120.0)})
    assert out.level == "orange"
    assert "CR-1 切线角 50.0° 已持续 30 分钟（黄色）" in out.reasons
    assert "RG-2：24 小时降雨 120 mm，达到 100 mm（极端降雨）" in out.reasons


def test_tie_names_the_largest_angle() -> None:
    out = dc.decide(
        {"GNSS-1": disp("orange", 81.0), "GNSS-2": disp("orange", 83.5), "GNSS-3": disp("blue")},
        {},
    )
    assert out.level == "orange"
    assert out.reasons[0].startswith("GNSS-2 切线角 83.5°")
    assert [e["monitor"] for e in out.evidence] == ["GNSS-1", "GNSS-2", "GNSS-3"]


def test_worst_gauge_is_named() -> None:
    out = dc.decide({}, {"RG-1": rain(t24=60.0), "RG-2": RAIN["extreme"]})
    assert out.level == "blue" and out.rain_class == "extreme"
    assert any(r.startswith("RG-2：72 小时降雨 250 mm，超过 Caine 阈值") for r in out.reasons)


@pytest.mark.parametrize(
    ("level", "lead_h", "r2", "expected"),
    [
        ("yellow", 14.0, 0.95, "orange"),
        ("yellow", 3.0, 0.95, "red"),
        ("yellow", -2.0, 0.95, "red"),  # predicted time already passed
        ("orange", 14.0, 0.95, "orange"),
        ("yellow", 30.0, 0.95, "yellow"),  # beyond the 24 h horizon
        ("yellow", 3.0, 0.5, "yellow"),  # poor fit
        ("blue", 3.0, 0.95, "blue"),  # not accelerating by the tangent angle
    ],
)
def test_inverse_velocity_escalation(level: str, lead_h: float, r2: float, expected: str) -> None:
    out = dc.decide({"GNSS-3": disp(level, fit=fit(lead_h, r2))}, {})
    assert out.level == expected
    assert any(e["kind"] == "inverse_velocity" for e in out.evidence) == (
        r2 >= 0.8 and level != "blue"
    )


def test_inverse_velocity_reason() -> None:
    out = dc.decide({"GNSS-3": disp("yellow", fit=fit(14.2))}, {})
    assert "GNSS-3 反速度法预测 14 小时后失稳（R²=0.95）" in out.reasons
    assert "GNSS-3 inverse velocity predicts failure in 14 h (R² 0.95)" in out.reasons_en


def test_a_district_table() -> None:
    table = dc.DecisionTable(
        combination={"none": {"heavy": "blue"}},
        heavy_thresholds=("guzzetti",),
        lead_orange_h=48.0,
    )
    assert dc.decide({"G": disp("none")}, {"R": RAIN["heavy"]}, table).level == "blue"
    assert dc.decide({"G": disp("yellow")}, {"R": RAIN["heavy"]}, table).level == "yellow"
    assert dc.decide({"G": disp("yellow", fit=fit(40.0))}, {}, table).level == "orange"


def test_empty_inputs() -> None:
    out = dc.decide({}, {})
    assert out.level == "none" and out.reasons == ["无监测数据"]
    assert out.reasons_en == ["no monitoring data"] and out.evidence == []


def test_quiet_inputs() -> None:
    out = dc.decide({"G": disp("none")}, {"R": rain()})
    assert out.level == "none"
    assert out.reasons == ["各监测点与雨量站均未达到预警条件"]
    json.dumps(out.as_dict(), allow_nan=False)


def test_dead_sensor_and_spike_never_make_red() -> None:
    t = T0 + np.arange(24 * 60, dtype=np.int64) * HOUR
    dead = d.analyse(t, np.full(len(t), 7.7), d.DisplacementConfig(v_uniform=0.2))
    creep = 0.2 * (t - T0) / DAY
    spiked = creep.copy()
    spiked[-1] += 80.0
    spike = d.analyse(t, spiked, d.DisplacementConfig(v_uniform=0.2))
    unsmoothed = d.analyse(
        t, spiked, d.DisplacementConfig(v_uniform=0.2, smoothing="none", despike_k=0)
    )
    out = dc.decide({"DEAD": dead, "SPIKE": spike, "RAW": unsmoothed}, {"RG": RAIN["heavy"]})
    assert out.level not in ("orange", "red")
    assert dead.level == "none" and spike.level == "blue" and unsmoothed.level == "blue"


def test_end_to_end_on_the_creep_curve() -> None:
    days = np.arange(100, dtype=float)
    t = T0 + np.arange(100, dtype=np.int64) * DAY
    s = 10 * np.log(100 / (100 - days))
    r = d.analyse(t, s, d.DisplacementConfig(smoothing="none", v_uniform=0.1))
    out = dc.decide({"GNSS-3": r}, {})
    assert out.level == "red"
    assert out.reasons[0].startswith("GNSS-3 切线角")
    assert any("反速度法预测" in x for x in out.reasons)  # failure ≈ 24 h after day 99
    json.dumps(out.as_dict(), allow_nan=False)
