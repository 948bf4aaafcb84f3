"""Device code → what ingestion needs to know about it, cached per process.

Ingestion looks up thousands of devices a second; the cache is refreshed in full when it is
older than ``TTL_S`` (so a change made by another process shows within that time) and asked
again for any code it does not know (so a device registered a moment ago is found at once).
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from cityops.telemetry.models import Device, DeviceGroup, DeviceType

TTL_S = 30.0


@dataclass(frozen=True)
class MetricSpec:
    name: str
    unit: str
    lo: float
    hi: float
    binary: bool = False

    @classmethod
    def from_dict(cls, d: dict[str, object]) -> MetricSpec:
        binary = d.get("kind") == "binary"
        lo = float(d.get("min", 0 if binary else -math.inf))  # type: ignore[arg-type]
        hi = float(d.get("max", 1 if binary else math.inf))  # type: ignore[arg-type]
        return cls(str(d["name"]), str(d.get("unit", "")), lo, hi, binary)


@dataclass(frozen=True)
class DeviceInfo:
    id: int
    code: str
    type_code: str
    group: str | None
    site: str | None
    region_code: str
    lat: float
    lon: float
    active: bool
    metrics: dict[str, MetricSpec]


class Directory:
    def __init__(self, ttl_s: float = TTL_S) -> None:
        self.ttl_s = ttl_s
        self._lock = threading.Lock()
        self._by_code: dict[str, DeviceInfo] = {}
        self._loaded_at = -math.inf

    def invalidate(self) -> None:
        with self._lock:
            self._loaded_at = -math.inf

    def lookup(self, session: Session, codes: Iterable[str]) -> dict[str, DeviceInfo]:
        wanted = set(codes)
        # The database is asked outside the lock: a thread waiting for the database (on SQLite,
        # for the write lock another thread holds) must not block threads that only read.
        with self._lock:
            stale = time.monotonic() - self._loaded_at > self.ttl_s
            known = self._by_code
        if stale:
            known = _load(session, None)
            with self._lock:
                self._by_code, self._loaded_at = known, time.monotonic()
        missing = wanted - known.keys()
        if missing:
            found = _load(session, missing)
            if found:
                with self._lock:
                    self._by_code = {**self._by_code, **found}
                    known = self._by_code
        return {c: known[c] for c in wanted if c in known}


def _load(session: Session, codes: set[str] | None) -> dict[str, DeviceInfo]:
    types = {
        t.code: {m["name"]: MetricSpec.from_dict(m) for m in t.metrics}
        for t in session.scalars(select(DeviceType))
    }
    query = select(Device, DeviceGroup.code).outerjoin(
        DeviceGroup, Device.group_id == DeviceGroup.id
    )
    if codes is not None:
        query = query.where(Device.code.in_(sorted(codes)))
    out: dict[str, DeviceInfo] = {}
    for device, group in session.execute(query):
        out[device.code] = DeviceInfo(
            id=device.id,
            code=device.code,
            type_code=device.type_code,
            group=group,
            site=device.site,
            region_code=device.region_code,
            lat=device.lat,
            lon=device.lon,
            active=device.active,
            metrics=types.get(device.type_code, {}),
        )
    return out


# One per process: the HTTP routes, the MQTT workers and the demo share it.
DIRECTORY = Directory()
