"""Device code → what ingestion needs to know about it, cached per process.

Ingestion looks up thousands of devices a second; the cache is refreshed in full when it is
older than ``TTL_S`` (so a change made by another process shows within that time) and asked
again for any code it does not know (so a device registered a moment ago is found at once).
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass, field

from sqlalchemy import select
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from cityops.db import readers_of
from cityops.telemetry.models import Device, DeviceGroup, DeviceType

log = logging.getLogger("cityops.telemetry")

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
    # metric → (min, max) of the metrics that take any number in a range (not binary ones):
    # what the common case of validation needs, in one lookup.
    ranges: dict[str, tuple[float, float]] = field(default_factory=dict)


class Directory:
    def __init__(self, ttl_s: float = TTL_S) -> None:
        self.ttl_s = ttl_s
        self._lock = threading.Lock()
        self._by_code: dict[str, DeviceInfo] = {}
        self._by_id: dict[int, DeviceInfo] = {}
        self._loaded_at = -math.inf

    def invalidate(self) -> None:
        with self._lock:
            self._loaded_at = -math.inf

    def known(self, session: Session) -> tuple[dict[str, DeviceInfo], dict[int, DeviceInfo]]:
        """Every device in the cache, by code and by id (reloaded in full when stale). The
        dicts are replaced, never changed: a caller may keep reading them."""
        # The database is asked outside the lock: a thread waiting for the database (on SQLite,
        # for the write lock another thread holds) must not block threads that only read.
        with self._lock:
            stale = time.monotonic() - self._loaded_at > self.ttl_s
            by_code, by_id = self._by_code, self._by_id
        if stale:
            by_code = _load(session, None)
            by_id = {d.id: d for d in by_code.values()}
            with self._lock:
                self._by_code, self._by_id = by_code, by_id
                self._loaded_at = time.monotonic()
        return by_code, by_id

    def lookup(self, session: Session, codes: Iterable[str]) -> dict[str, DeviceInfo]:
        """These devices (those that exist), asking the database for any not in the cache."""
        wanted = set(codes)
        known, _by_id = self.known(session)
        missing = wanted - known.keys()
        if missing:
            found = _load(session, missing)
            if found:
                with self._lock:
                    self._by_code = {**self._by_code, **found}
                    self._by_id = {**self._by_id, **{d.id: d for d in found.values()}}
                    known = self._by_code
        return {c: known[c] for c in wanted if c in known}


def _load(session: Session, codes: set[str] | None) -> dict[str, DeviceInfo]:
    types = {
        t.code: {m["name"]: MetricSpec.from_dict(m) for m in t.metrics}
        for t in session.scalars(select(DeviceType))
    }
    ranges = {
        code: {n: (m.lo, m.hi) for n, m in metrics.items() if not m.binary}
        for code, metrics in types.items()
    }
    # Plain rows, not ORM objects: the whole fleet (tens of thousands) loads in a blink.
    query = select(
        Device.id,
        Device.code,
        Device.type_code,
        DeviceGroup.code,
        Device.site,
        Device.region_code,
        Device.lat,
        Device.lon,
        Device.active,
    ).outerjoin(DeviceGroup, Device.group_id == DeviceGroup.id)
    if codes is not None:
        query = query.where(Device.code.in_(sorted(codes)))
    out: dict[str, DeviceInfo] = {}
    for id_, code, type_code, group, site, region, lat, lon, active in session.execute(query):
        out[code] = DeviceInfo(
            id=id_,
            code=code,
            type_code=type_code,
            group=group,
            site=site,
            region_code=region,
            lat=lat,
            lon=lon,
            active=bool(active),
            metrics=types.get(type_code, {}),
            ranges=ranges.get(type_code, {}),
        )
    return out


# One per process: the HTTP routes, the MQTT workers and the demo share it.
DIRECTORY = Directory()


def preload(factory: sessionmaker[Session]) -> int | None:
    """Load the device directory now (a process that ingests, before its first batch): how
    many devices it holds, or None when the database cannot be reached (the first batch then
    loads it, as it would have)."""
    try:
        with readers_of(factory)() as session:
            return len(DIRECTORY.known(session)[0])
    except SQLAlchemyError as exc:
        log.warning("device directory not loaded at start-up: %s", type(exc).__name__)
        return None
