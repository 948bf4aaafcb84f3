"""One entry point for every channel (HTTP batch, MQTT, the simulator): check, store, evaluate.

The caller owns the transaction: the readings, the rule states and any alarm they raise commit
together or not at all — which is what lets an MQTT worker acknowledge a message only after
its commit, and a restarted worker neither lose nor repeat an alarm. The roll-ups and latest
values are folded in from the stored readings (``cityops.telemetry.fold``): in the same
transaction by default, or — ``fold=False``, the high-volume channels — by a background folder
a moment later, exactly once either way. ``ingest()`` is ``check_readings()`` then
``store_checked()``; a caller that must share a write lock (an MQTT worker on SQLite) checks
in a transaction that only reads and takes the lock for the second half alone.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from operator import itemgetter
from typing import Any

from sqlalchemy import text
from sqlalchemy.orm import Session

from cityops.telemetry import store
from cityops.telemetry.directory import DIRECTORY, DeviceInfo, Directory
from cityops.telemetry.validate import Limits, Rejection, Row, check_batch, device_code

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
    "SELECT count(CASE WHEN s.shared THEN pg_advisory_xact_lock_shared(s.k)"
    " ELSE pg_advisory_xact_lock(s.k) END) FROM ("
    "SELECT k, shared FROM unnest(CAST(:keys AS bigint[]), CAST(:shared AS boolean[]))"
    " AS t(k, shared) ORDER BY k OFFSET 0) AS s"
)
LOCK_SPACE = 0x43_4F_00_00_00_00  # keeps these keys apart from other advisory-lock users
BUCKETS = 256  # device id modulo this: the coarse locks
ONE_BY_ONE = 256  # a batch of up to this many devices locks them one by one


def lock_devices(session: Session, device_ids: Collection[int]) -> set[int]:
    """PostgreSQL: serialise writers per device from the moment they evaluate its new
    readings to their commit, so two never evaluate readings of the same device at the same
    moment. Without it, a series' previous timestamp and the rule states could be read from
    different moments, and a late reading be evaluated as new against a newer state (a late
    dry reading clearing the alarm another writer has just raised). The readings are stored
    before: a writer holding the locks sees every earlier holder's readings committed, and
    none of a later one's — which is the order they are evaluated in — and two batches of the
    same devices copy their readings side by side. SQLite needs none: ingestion holds its
    single write lock from BEGIN.

    The locks are bounded, whatever the batch: a batch of at most ``ONE_BY_ONE`` devices
    takes one exclusive lock per device under a shared lock on each device's bucket (device id
    modulo ``BUCKETS``); a larger batch takes its buckets exclusively. Two writers with a
    device in common therefore exclude each other either way, small batches of different
    devices still run side by side, and a 10,000-device batch takes 256 locks, not 10,000
    (PostgreSQL's shared lock table holds some 6,400 in all by default). Every writer takes
    its locks in one statement in key order — buckets first — so none waits in a cycle.
    Returns the devices now held."""
    ids = set(device_ids)
    if not ids:
        return ids
    buckets = sorted({LOCK_SPACE + i % BUCKETS for i in ids})
    if len(ids) > ONE_BY_ONE:
        keys, shared = buckets, [False] * len(buckets)
    else:
        fine = sorted(LOCK_SPACE + BUCKETS + i for i in ids)
        keys, shared = buckets + fine, [True] * len(buckets) + [False] * len(fine)
    session.execute(_LOCK, {"keys": keys, "shared": shared})
    return ids


@dataclass
class Checked:
    """A batch checked against the device directory, nothing stored yet."""

    received: int
    rows: list[Row]
    rejected: list[Rejection]
    by_code: Mapping[str, DeviceInfo]
    by_id: Mapping[int, DeviceInfo]


def check_readings(
    session: Session,
    items: list[Any],
    now: datetime,
    *,
    policy: Policy | None = None,
    allowed: Callable[[DeviceInfo], bool] | None = None,
    directory: Directory = DIRECTORY,
) -> Checked:
    """The first half of ``ingest()``: reads the database only for devices not in the cache,
    so a caller may run it before taking the write lock (``cityops ingest`` does: two workers
    then check one batch while the other writes)."""
    limits = (policy or Policy()).limits(now)
    by_code, by_id = directory.known(session)
    rows, rejected, unknown = check_batch(items, by_code, limits, allowed, defer_unknown=True)
    if unknown:  # devices not in the cache: registered a moment ago, or not at all
        found = directory.lookup(session, {device_code(items[i]) for i in unknown})
        more, more_rejected, _ = check_batch(
            [items[i] for i in unknown], found, limits, allowed, positions=unknown
        )
        rows += more
        if more_rejected:
            rejected = sorted(rejected + more_rejected, key=lambda r: r.index)
        if found:  # now in the cache too
            by_code, by_id = directory.known(session)
    return Checked(len(items), rows, rejected, by_code, by_id)


def store_checked(
    session: Session, checked: Checked, now: datetime, *, fold: bool = True
) -> Result:
    """The second half of ``ingest()``: store the checked readings, evaluate the rules."""
    from cityops.alarms import engine

    rows = checked.rows
    result = Result(received=checked.received, rejected=checked.rejected)
    rules = engine.enabled_rules(session) if rows else []
    batch = store.store(session, rows, now, look_back=engine.looks_back(rules))
    result.stored = batch.count
    result.duplicates = len(rows) - batch.count
    if batch.count and session.get_bind().dialect.name == "postgresql":
        lock_devices(session, set(map(itemgetter(0), batch.new)))
    if batch.count:
        result.alarms = engine.on_readings(
            session, batch, checked.by_id, now, by_code=checked.by_code, rules=rules
        )
    if fold and batch.count:
        from cityops.telemetry import fold as folding

        folding.run(session, now, wait=True, limit=None)
    return result


def ingest(
    session: Session,
    items: list[Any],
    now: datetime,
    *,
    policy: Policy | None = None,
    allowed: Callable[[DeviceInfo], bool] | None = None,
    directory: Directory = DIRECTORY,
    fold: bool = True,
) -> Result:
    """Check, store, evaluate. ``fold``: bring the roll-ups and latest values up to date
    before returning (False: leave that to a background folder — see
    ``cityops.telemetry.fold``)."""
    checked = check_readings(
        session, items, now, policy=policy, allowed=allowed, directory=directory
    )
    return store_checked(session, checked, now, fold=fold)
