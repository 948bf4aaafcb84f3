"""Writers of one SQLite database take turns before they take its write lock.

SQLite makes a writer that finds the database locked poll for it in growing sleeps (1, 2, 5, …
up to 100 ms), so a writer waiting for another's commit starts tens of milliseconds late — an
HTTP batch waiting for the folder, one server process for another. Writers queue here instead:
on a lock of this process (threads), then on an ``flock`` of a file beside the database
(``<database>-writers``: processes; the kernel drops it with a process that dies). A turn ends
when the connection goes back to the pool, its transaction over. A turn not had within the
busy timeout is passed over: SQLite's own lock then decides, as before.

Each process counts its turns, how long it waited for them and how long it held them
(``usage()``): ``cityops ingest`` logs them with its figures, so an operator sees when the
single writer is busy all the time — the sign to move to PostgreSQL.
"""

from __future__ import annotations

import fcntl
import os
import threading
import time
import weakref
from dataclasses import dataclass
from typing import Any

POLL_S = 0.0005  # between tries for another process's turn


@dataclass(frozen=True)
class Usage:
    """A process's write turns so far: how many, and the seconds spent waiting for them and
    holding them."""

    turns: int = 0
    waited_s: float = 0.0
    held_s: float = 0.0

    def since(self, earlier: Usage) -> Usage:
        return Usage(
            self.turns - earlier.turns,
            self.waited_s - earlier.waited_s,
            self.held_s - earlier.held_s,
        )


class Turns:
    def __init__(self, path: str | None) -> None:
        self._threads = threading.Lock()
        self._fd: int | None = None
        if path:
            self._fd = os.open(f"{path}-writers", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
            weakref.finalize(self, os.close, self._fd)
        self.usage = Usage()  # replaced, never changed in place: read without the lock
        self._taken_at = 0.0

    def take(self, timeout_s: float) -> bool:
        asked = time.monotonic()
        if not self._take(asked + timeout_s):
            return False
        self._taken_at = time.monotonic()
        u = self.usage
        self.usage = Usage(u.turns + 1, u.waited_s + self._taken_at - asked, u.held_s)
        return True

    def _take(self, deadline: float) -> bool:
        if not self._threads.acquire(timeout=max(0.0, deadline - time.monotonic())):
            return False
        if self._fd is None:
            return True
        while True:
            try:
                fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return True
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    self._threads.release()
                    return False
                time.sleep(POLL_S)

    def give_back(self) -> None:
        """By whichever thread returns the connection (a plain lock, not an RLock)."""
        u = self.usage
        self.usage = Usage(u.turns, u.waited_s, u.held_s + time.monotonic() - self._taken_at)
        if self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
        self._threads.release()

    def taken(self) -> bool:
        return self._threads.locked()


_TURNS: weakref.WeakKeyDictionary[Any, Turns] = weakref.WeakKeyDictionary()  # by pool
_LOCK = threading.Lock()
HELD = "cityops_writer_turns"  # connection record info: the turns this connection holds


def of(pool: Any, path: str | None) -> Turns:
    with _LOCK:
        turns = _TURNS.get(pool)
        if turns is None:
            turns = _TURNS[pool] = Turns(path)
        return turns


def usage(pool: Any) -> Usage | None:
    """This process's write turns on the database behind ``pool`` so far; None if it never
    asked for one (or the database is not SQLite)."""
    if pool is None:
        return None
    with _LOCK:
        turns = _TURNS.get(pool)
    return turns.usage if turns is not None else None


def take(conn: Any, path: str | None, timeout_s: float) -> None:
    """Before a connection's BEGIN IMMEDIATE."""
    turns = of(conn.engine.pool, path)
    if turns.take(timeout_s):
        conn.connection.info.setdefault(HELD, []).append(turns)


def give_back(_dbapi_conn: Any, record: Any, *_exception: Any) -> None:
    """Pool ``checkin`` / ``invalidate``: the connection's transaction is over."""
    for turns in record.info.pop(HELD, []) if record is not None else []:
        turns.give_back()
