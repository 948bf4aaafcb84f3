"""Rule parameters, checked once when a rule is saved, and the comparisons they define."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from cityops.alarms.models import Kind
from cityops.errors import InvalidInput

OPS = ("above", "below")


@dataclass(frozen=True)
class Threshold:
    """Raise when the value is above (below) ``value`` for ``duration_ms``; clear only when it
    is back at or below (above) ``clear`` — the hysteresis band keeps a value hovering at the
    limit from raising and clearing on every reading."""

    op: str
    value: float
    clear: float
    duration_ms: int = 0

    def on(self, v: float) -> bool:
        return v > self.value if self.op == "above" else v < self.value

    def off(self, v: float) -> bool:
        return v <= self.clear if self.op == "above" else v >= self.clear

    def describe(self) -> str:
        sign = ">" if self.op == "above" else "<"
        return f"{sign} {self.value:g}"


def _number(params: dict[str, Any], key: str, *, required: bool = True) -> float | None:
    raw = params.get(key)
    if raw is None and not required:
        return None
    if isinstance(raw, bool) or not isinstance(raw, int | float) or not math.isfinite(raw):
        raise InvalidInput(
            f"规则参数 {key} 须为数字 / params.{key}: a number", field=f"params.{key}"
        )
    return float(raw)


def _op(params: dict[str, Any]) -> str:
    op = params.get("op", "above")
    if op not in OPS:
        raise InvalidInput("params.op: above 或 below / above or below", field="params.op")
    return str(op)


def threshold(params: dict[str, Any]) -> Threshold:
    op = _op(params)
    value = _number(params, "value")
    assert value is not None
    clear = _number(params, "clear", required=False)
    if clear is None:
        clear = value
    if (op == "above" and clear > value) or (op == "below" and clear < value):
        raise InvalidInput(
            "解除值须在报警值的恢复一侧 / params.clear must lie on the normal side of value",
            field="params.clear",
        )
    duration = _number(params, "duration_s", required=False) or 0.0
    if duration < 0:
        raise InvalidInput("params.duration_s ≥ 0", field="params.duration_s")
    return Threshold(op, value, clear, int(duration * 1000))


def window_ms(params: dict[str, Any]) -> int:
    window = _number(params, "window_s")
    assert window is not None
    if not 1 <= window <= 30 * 86400:
        raise InvalidInput("params.window_s: 1 s – 30 days", field="params.window_s")
    return int(window * 1000)


def after_ms(params: dict[str, Any]) -> int:
    after = _number(params, "after_s")
    assert after is not None
    if not 10 <= after <= 30 * 86400:
        raise InvalidInput("params.after_s: 10 s – 30 days", field="params.after_s")
    return int(after * 1000)


@dataclass(frozen=True)
class Part:
    metric: str
    test: Threshold


def composite(params: dict[str, Any]) -> tuple[list[Part], int]:
    raw = params.get("conditions")
    if not isinstance(raw, list) or not 2 <= len(raw) <= 10:
        raise InvalidInput(
            "组合规则须有 2–10 个条件 / params.conditions: 2–10 conditions",
            field="params.conditions",
        )
    parts = []
    for i, cond in enumerate(raw):
        if not isinstance(cond, dict) or not isinstance(cond.get("metric"), str):
            raise InvalidInput(
                f"params.conditions[{i}]: {{metric, op, value}}", field=f"params.conditions.{i}"
            )
        parts.append(Part(cond["metric"], threshold(cond)))
    fresh = _number(params, "fresh_s", required=False) or 3600.0
    return parts, int(fresh * 1000)


def validate(kind: str, metric: str | None, params: dict[str, Any]) -> None:
    """Raise InvalidInput naming the field if the parameters do not make a working rule."""
    if kind in (Kind.threshold, Kind.rate, Kind.no_data) and kind != Kind.no_data and not metric:
        raise InvalidInput("该类规则须指定指标 / metric is required", field="metric")
    match kind:
        case Kind.threshold:
            threshold(params)
        case Kind.rate:
            threshold(params)
            window_ms(params)
        case Kind.no_data:
            after_ms(params)
        case Kind.composite:
            composite(params)
        case _:
            raise InvalidInput("kind: threshold | rate | no_data | composite", field="kind")
