"""Check each reading on its own: a bad one is rejected with its reason, the rest are kept.

A reading is ``{"device", "metric", "ts", "value"}``; ``{"device", "ts", "values": {metric:
value, …}}`` carries several metrics of one instant. ``ts`` is an ISO 8601 time with a UTC
offset, or a number: epoch milliseconds, or epoch seconds when below 10¹¹ (before 1973 in
milliseconds, after the year 5000 in seconds — so the two cannot be confused).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from msgspec import UNSET

from cityops.telemetry.directory import DeviceInfo
from cityops.telemetry.wire import Wire

SECONDS_BELOW = 100_000_000_000


@dataclass(frozen=True)
class Rejection:
    index: int
    field: str
    reason: str
    message: str
    device: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "index": self.index,
            "device": self.device,
            "field": self.field,
            "reason": self.reason,
            "message": self.message,
        }


@dataclass(frozen=True)
class Limits:
    now_ms: int
    future_ms: int  # latest acceptable timestamp
    oldest_ms: int  # earliest acceptable timestamp (the retention horizon)


Row = tuple[int, str, int, float]  # device id, metric, ts (epoch ms), value

_MESSAGES = {
    "malformed": "每条读数须为 JSON 对象 / each reading must be a JSON object",
    "missing": "缺少字段 / missing field",
    "bad_device": "设备编码须为文本 / device must be a string (the device's code)",
    "unknown_device": "未登记的设备 / unknown device",
    "inactive_device": "设备已停用 / device is deactivated",
    "forbidden_device": "该密钥不能为此设备上报 / this key may not report for this device",
    "unknown_metric": "该设备类型没有此指标 / the device type has no such metric",
    "wrong_type": "数值须为数字 / value must be a number",
    "not_finite": "数值不能为 NaN 或无穷 / value must be finite",
    "out_of_range": "数值超出量程 / value outside the sensor's range",
    "bad_timestamp": "时间格式无效（ISO 8601 带时区或毫秒时间戳）/ "
    "ts must be ISO 8601 with an offset or epoch milliseconds",
    "future_timestamp": "时间戳超前过多 / timestamp too far in the future",
    "too_old": "时间戳早于保存期限 / timestamp older than the retention period",
}


def rejection(index: int, field: str, reason: str, device: str | None = None) -> Rejection:
    return Rejection(index, field, reason, _MESSAGES[reason], device)


def _finite(number: float) -> bool:
    try:
        return math.isfinite(number)
    except OverflowError:  # an integer too large for a float
        return False


def parse_ts(raw: Any) -> int | None:
    if isinstance(raw, bool):
        return None
    if isinstance(raw, int | float):
        if not _finite(raw) or raw <= 0 or raw > 1e15:
            return None
        return int(raw * 1000) if raw < SECONDS_BELOW else int(raw)
    if isinstance(raw, str) and 10 <= len(raw) <= 40:
        try:
            moment = datetime.fromisoformat(raw)
        except ValueError:
            return None
        if moment.tzinfo is None:
            return None
        return int(moment.timestamp() * 1000)
    return None


def check(
    items: list[Any],
    devices: Mapping[str, DeviceInfo],
    limits: Limits,
    allowed: Any = None,
) -> tuple[list[Row], list[Rejection]]:
    """``allowed(device) -> bool`` restricts which devices the caller may report for."""
    rows, rejected, _unknown = check_batch(items, devices, limits, allowed)
    return rows, rejected


def check_batch(
    items: list[Any],
    devices: Mapping[str, DeviceInfo],
    limits: Limits,
    allowed: Any = None,
    *,
    defer_unknown: bool = False,
    positions: list[int] | None = None,
) -> tuple[list[Row], list[Rejection], list[int]]:
    """``check()``, and: with ``defer_unknown``, a reading naming a device not in
    ``devices`` is neither stored nor rejected but listed (its position in ``items``), for the
    caller to look the device up and check those readings again. ``positions`` gives each
    item's index to report (a re-check of some readings of a batch). Returns rows,
    rejections and those positions."""
    rows: list[Row] = []
    rejected: list[Rejection] = []
    unknown: list[int] = []
    permitted: dict[str, bool] = {}  # allowed() per device, asked once a batch
    future_ms, oldest_ms = limits.future_ms, limits.oldest_ms
    append = rows.append
    known = devices.get
    for index, item in enumerate(items):
        # The common case in one pass and no objects made: a plain reading of a known, active,
        # permitted device, stamped in epoch milliseconds, each value a float within range.
        kind = type(item)
        if kind is Wire:
            code, ts, values = item.device, item.ts, item.values
        elif kind is dict:
            code, ts, values = item.get("device"), item.get("ts"), item.get("values")
        else:
            code = ts = values = None
        device = known(code) if type(code) is str else None
        if (
            device is not None
            and device.active
            and type(ts) is int
            and oldest_ms <= ts <= future_ms
            and (allowed is None or _permitted(permitted, allowed, device))
        ):
            ranges = device.ranges
            if values is None or values is UNSET:
                if kind is Wire:
                    metric, value = item.metric, item.value
                else:
                    metric, value = item.get("metric"), item.get("value")
                if type(value) is float and type(metric) is str:
                    bounds = ranges.get(metric)
                    # value - value is 0.0 for every finite float (an unbounded metric lets
                    # ±inf past the bounds; NaN never passes them).
                    if (
                        bounds is not None
                        and bounds[0] <= value <= bounds[1]
                        and value - value == 0.0
                    ):
                        append((device.id, metric, ts, value))
                        continue
            elif type(values) is dict:
                good = [
                    (device.id, metric, ts, value)
                    for metric, value in values.items()
                    if type(value) is float
                    and type(metric) is str
                    and (bounds := ranges.get(metric)) is not None
                    and bounds[0] <= value <= bounds[1]
                    and value - value == 0.0
                ]
                if good and len(good) == len(values):
                    rows += good
                    continue
        if kind is Wire:  # the slow path reads the reading as sent
            item = item.as_dict()
        at = index if positions is None else positions[index]
        if defer_unknown and _unknown(item, devices):
            unknown.append(at)
            continue
        _check_one(at, item, devices, limits, allowed, permitted, rows, rejected)
    return rows, rejected, unknown


def _permitted(permitted: dict[str, bool], allowed: Any, device: DeviceInfo) -> bool:
    ok = permitted.get(device.code)
    if ok is None:
        ok = permitted[device.code] = bool(allowed(device))
    return ok


def device_code(item: Any) -> Any:
    """The device a reading names (a ``Wire`` record's or a parsed object's), if any."""
    if type(item) is Wire:
        return None if item.device is UNSET else item.device
    return item.get("device") if isinstance(item, dict) else None


def _unknown(item: Any, devices: Mapping[str, DeviceInfo]) -> bool:
    if not isinstance(item, dict):
        return False
    code = item.get("device")
    return isinstance(code, str) and bool(code) and code not in devices


def _check_one(
    index: int,
    item: Any,
    devices: Mapping[str, DeviceInfo],
    limits: Limits,
    allowed: Any,
    permitted: dict[str, bool],
    rows: list[Row],
    rejected: list[Rejection],
) -> None:
    """One reading, every rule, each failure with its reason."""
    future_ms, oldest_ms = limits.future_ms, limits.oldest_ms
    if not isinstance(item, dict):
        rejected.append(rejection(index, "reading", "malformed"))
        return
    code = item.get("device")
    if not isinstance(code, str) or not code:
        missing = code is None or code == ""
        rejected.append(rejection(index, "device", "missing" if missing else "bad_device"))
        return
    device = devices.get(code)
    reason = (
        "unknown_device"
        if device is None
        else "inactive_device"
        if not device.active
        else "forbidden_device"
        if allowed is not None and not permitted.setdefault(code, bool(allowed(device)))
        else None
    )
    if reason is not None or device is None:
        rejected.append(rejection(index, "device", reason or "unknown_device", code))
        return
    raw_ts = item.get("ts")
    # The common case first: epoch milliseconds as a JSON integer.
    ts = raw_ts if type(raw_ts) is int and oldest_ms <= raw_ts <= future_ms else parse_ts(raw_ts)
    if ts is None:
        reason = "missing" if "ts" not in item else "bad_timestamp"
        rejected.append(rejection(index, "ts", reason, code))
        return
    if ts > future_ms or ts < oldest_ms:
        reason = "future_timestamp" if ts > future_ms else "too_old"
        rejected.append(rejection(index, "ts", reason, code))
        return
    values = item.get("values")
    if isinstance(values, dict):
        if not values:  # counted as received: it must be stored or rejected
            rejected.append(rejection(index, "values", "missing", code))
            return
        pairs = list(values.items())
        prefix = "values."
    elif "metric" in item:
        pairs = [(item.get("metric"), item.get("value", _MISSING))]
        prefix = ""
    else:
        rejected.append(rejection(index, "metric", "missing", code))
        return
    specs = device.metrics
    for metric, value in pairs:
        spec = specs.get(metric) if type(metric) is str else None
        if (
            spec is not None
            and type(value) is float
            and not spec.binary
            and spec.lo <= value <= spec.hi  # false for NaN
            and value - value == 0.0  # false for ±inf (a metric may have no bounds)
        ):
            rows.append((device.id, metric, ts, value))
            continue
        problem = _check_value(device, metric, value)
        if problem:
            field = f"{prefix}{metric}" if prefix else "value"
            where = "metric" if problem == "unknown_metric" and not prefix else field
            rejected.append(rejection(index, where, problem, code))
        else:
            rows.append((device.id, metric, ts, float(value)))


_MISSING = object()


def _check_value(device: DeviceInfo, metric: Any, value: Any) -> str | None:
    spec = device.metrics.get(metric) if isinstance(metric, str) else None
    if spec is None:
        return "unknown_metric"
    if value is _MISSING or value is None:
        return "missing"
    if isinstance(value, bool) or not isinstance(value, int | float):
        return "wrong_type"
    if not _finite(value):
        return "not_finite"
    if spec.binary and value not in (0, 1):
        return "out_of_range"
    if not spec.lo <= value <= spec.hi:
        return "out_of_range"
    return None
