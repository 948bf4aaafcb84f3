"""Failed log-ins slow down, then lock, per login name and per client address."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from cityops.auth.models import LoginThrottle
from cityops.errors import TooManyAttempts

MAX_DELAY_S = 60


@dataclass(frozen=True)
class Limits:
    slowdown_after: int
    lock_after: int
    lock_minutes: int


def check(session: Session, keyed: Sequence[tuple[str, Limits]], now: datetime) -> None:
    """Raise 429 with Retry-After if any key is locked or still inside its slow-down delay."""
    rows = {
        r.key: r
        for r in session.scalars(
            select(LoginThrottle).where(LoginThrottle.key.in_([k for k, _ in keyed]))
        )
    }
    wait = 0.0
    for key, limits in keyed:
        row = rows.get(key)
        if row is None:
            continue
        if row.locked_until and row.locked_until > now:
            wait = max(wait, (row.locked_until - now).total_seconds())
        elif row.failures >= limits.slowdown_after:
            delay = min(2 ** (row.failures - limits.slowdown_after), MAX_DELAY_S)
            ready = row.last_failed_at + timedelta(seconds=delay)
            if ready > now:
                wait = max(wait, (ready - now).total_seconds())
    if wait > 0:
        raise TooManyAttempts(math.ceil(wait))


def note_failure(session: Session, keyed: Sequence[tuple[str, Limits]], now: datetime) -> bool:
    """Count a failure; returns True when this failure locked one of the keys."""
    locked = False
    for key, limits in keyed:
        row = session.get(LoginThrottle, key)
        if row is None:
            row = LoginThrottle(key=key, failures=0, last_failed_at=now)
            session.add(row)
        if row.locked_until and row.locked_until <= now:
            row.failures = 0  # a lock that ran out starts the count again
            row.locked_until = None
        row.failures += 1
        row.last_failed_at = now
        if row.failures >= limits.lock_after and row.locked_until is None:
            row.locked_until = now + timedelta(minutes=limits.lock_minutes)
            locked = True
    session.flush()
    return locked


def clear(session: Session, keys: Sequence[str]) -> int:
    result = session.execute(delete(LoginThrottle).where(LoginThrottle.key.in_(list(keys))))
    return int(getattr(result, "rowcount", 0) or 0)


def locked_keys(session: Session, keys: Sequence[str], now: datetime) -> list[str]:
    return list(
        session.scalars(
            select(LoginThrottle.key).where(
                LoginThrottle.key.in_(list(keys)), LoginThrottle.locked_until > now
            )
        )
    )
