"""One entry point for every channel (HTTP batch, MQTT, the simulator): check, store, evaluate.

The caller owns the transaction: the readings, the roll-ups, the rule states and any alarm
they raise commit together or not at all — which is what lets an MQTT worker acknowledge a
message only after its commit, and a restarted worker neither lose nor repeat an alarm.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import text
from sqlalchemy.orm import Session

from cityops.telemetry import store
from cityops.telemetry.directory import DIRECTORY, DeviceInfo, Directory
from cityops.telemetry.validate import Limits, Rejection, check

DAY_MS = 86_400_000


@dataclass(frozen=True)
class Policy:
    batch_max: int = 10_000
    future_tolerance_s: int = 300
    retention_months: int = 13

    @classmethod
    def from_settings(cls, settings: Any) -> Policy:
        return cls(
            batch_max=settings.telemetry_batch_max,
            future_tolerance_s=settings.telemetry_future_tolerance_s,
            retention_months=settings.telemetry_retention_months,
        )

    def limits(self, now: datetime) -> Limits:
        now_ms = int(now.timestamp() * 1000)
        return Limits(
            now_ms=now_ms,
            future_ms=now_ms + self.future_tolerance_s * 1000,
            oldest_ms=now_ms - self.retention_months * 31 * DAY_MS,
        )


@dataclass
class Result:
    received: int = 0
    stored: int = 0
    duplicates: int = 0
    rejected: list[Rejection] = field(default_factory=list)
    alarms: list[int] = field(default_factory=list)  # alarms raised or changed

    def as_dict(self, max_rejections: int = 1000) -> dict[str, Any]:
        return {
            "received": self.received,
            "stored": self.stored,
            "duplicates": self.duplicates,
            "rejected_count": len(self.rejected),
            "rejected": [r.as_dict() for r in self.rejected[:max_rejections]],
            "alarms": self.alarms,
        }


def restriction(restrict: dict[str, str]) -> Callable[[DeviceInfo], bool] | None:
    """An API key may be limited to one device or one device group."""
    if "device" in restrict:
        code = restrict["device"]
        return lambda d: d.code == code
    if "group" in restrict:
        group = restrict["group"]
        return lambda d: d.group == group
    return None


_LOCK = text(
    "SELECT count(pg_advisory_xact_lock(k)) FROM "
    "(SELECT k FROM unnest(CAST(:keys AS bigint[])) AS k ORDER BY k OFFSET 0) AS s"
)
LOCK_SPACE = 0x43_4F_00_00_00_00  # keeps these keys apart from other advisory-lock users


def _lock_devices(session: Session, device_ids: set[int]) -> None:
    """PostgreSQL: one transaction lock per device, taken in one order by every writer, so
    two writers never store and evaluate readings of the same device at the same moment.
    Without it, a series' previous timestamp (read in the storing statement's snapshot) and
    the rule states (read by a later statement that sees the other writer's commit) could
    disagree, and a late reading would be evaluated as new against the newer state. SQLite
    needs none: ingestion holds its single write lock from BEGIN."""
    session.execute(_LOCK, {"keys": sorted(LOCK_SPACE + i for i in device_ids)})


def ingest(
    session: Session,
    items: list[Any],
    now: datetime,
    *,
    policy: Policy | None = None,
    allowed: Callable[[DeviceInfo], bool] | None = None,
    directory: Directory = DIRECTORY,
) -> Result:
    policy = policy or Policy()
    codes = {i["device"] for i in items if isinstance(i, dict) and isinstance(i.get("device"), str)}
    devices = directory.lookup(session, codes)
    rows, rejected = check(items, devices, policy.limits(now), allowed)
    result = Result(received=len(items), rejected=rejected)
    if rows and session.get_bind().dialect.name == "postgresql":
        _lock_devices(session, {r[0] for r in rows})
    batch = store.store(session, rows, now)
    result.stored = batch.count
    result.duplicates = len(rows) - batch.count
    if batch.count:
        from cityops.alarms import engine

        by_id = {d.id: d for d in devices.values()}
        result.alarms = engine.on_readings(session, batch, by_id, now)
    return result
