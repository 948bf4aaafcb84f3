"""The live bus: once a transaction that wrote feed items commits, every open event stream is
woken — in this process and, on PostgreSQL, in every other one.

Writers: hooks on every ``Session`` note the feed items each flush writes.

- PostgreSQL: the flush also sends ``NOTIFY cityops_feed, '<max id>'`` on the transaction's own
  connection, so the notification is delivered when — and only if — the transaction commits
  (a rolled-back savepoint takes its notification with it).
- SQLite (embedded, one process): after the commit, the streams of this process are woken; a
  rolled-back transaction (or savepoint) wakes nobody.

Readers: each app has a ``Hub`` of open streams. On PostgreSQL the hub runs one listener thread
(its own psycopg connection doing ``LISTEN cityops_feed``, reconnecting after failures) that
wakes them. A wake carries no data: a woken stream reads the feed itself, in its caller's scope,
and re-reads every ``live_poll_s`` anyway, so a lost wake costs at most one poll.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import threading
import weakref
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager, suppress
from types import FrameType
from typing import TYPE_CHECKING, Any

import anyio
from sqlalchemy import event, text
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session, SessionTransaction

from cityops.errors import CityOpsError
from cityops.live.models import FeedItem

if TYPE_CHECKING:
    from fastapi import FastAPI

CHANNEL = "cityops_feed"
_PENDING = "cityops_live_pending"  # Session.info: transaction → highest feed id it flushed
log = logging.getLogger(__name__)


class StreamsBusy(CityOpsError):
    status_code = 503
    code = "busy"

    def __init__(self, message: str, retry_after: int = 5) -> None:
        super().__init__(message, headers={"Retry-After": str(retry_after)})


# --- writers: announce committed feed items ---------------------------------------------------


def install() -> None:
    """Listen on every Session (idempotent)."""
    for name, hook in (
        ("after_flush", _after_flush),
        ("after_commit", _after_commit),
        ("after_soft_rollback", _after_soft_rollback),
        ("after_transaction_end", _after_transaction_end),
    ):
        if not event.contains(Session, name, hook):
            event.listen(Session, name, hook)


def _after_flush(session: Session, _context: Any) -> None:
    flushed = [obj.id for obj in session.new if isinstance(obj, FeedItem)]
    if not flushed:
        return
    top = max(flushed)
    connection = session.connection()
    if connection.dialect.name == "postgresql":
        # Delivered on commit, dropped on rollback: PostgreSQL keeps the promise for us.
        connection.execute(text("SELECT pg_notify(:c, :p)"), {"c": CHANNEL, "p": str(top)})
        return
    current = session.get_nested_transaction() or session.get_transaction()
    pending: dict[SessionTransaction, int] = session.info.setdefault(_PENDING, {})
    if current is not None:
        pending[current] = max(pending.get(current, 0), top)


def _after_commit(session: Session) -> None:
    if session.in_nested_transaction():
        return  # a savepoint released: its items are announced with the outer commit
    pending = session.info.pop(_PENDING, None)
    if pending:
        announce(max(pending.values()))


def _after_soft_rollback(session: Session, previous: SessionTransaction) -> None:
    pending = session.info.get(_PENDING)
    if not pending:
        return
    for tx in list(pending):
        t: SessionTransaction | None = tx
        while t is not None:
            if t is previous:
                del pending[tx]
                break
            t = t.parent


def _after_transaction_end(session: Session, transaction: SessionTransaction) -> None:
    if transaction.parent is None:
        session.info.pop(_PENDING, None)  # closed without committing


_HUBS: weakref.WeakSet[Hub] = weakref.WeakSet()
_HUBS_LOCK = threading.Lock()


def announce(upto: int) -> None:
    """Feed items up to ``upto`` are committed (SQLite): wake this process's streams."""
    with _HUBS_LOCK:
        hubs = list(_HUBS)
    for hub in hubs:
        if not hub.listens:
            hub.wake()


# --- readers: streams waiting for news --------------------------------------------------------


class Subscription:
    """One open stream's place in its hub: woken from any thread, awaited on its event loop."""

    def __init__(self, hub: Hub) -> None:
        self.hub = hub
        self.ended = False  # the server is stopping: finish the stream
        self._loop = asyncio.get_running_loop()
        self._event = asyncio.Event()
        self._pending = False

    def wake(self) -> None:
        if self._pending:
            return
        self._pending = True
        with suppress(RuntimeError):  # the loop is closed: the stream is gone
            self._loop.call_soon_threadsafe(self._event.set)

    def end(self) -> None:
        self.ended = True
        self._pending = False
        self.wake()

    def clear(self) -> None:
        """Before a read: wakes from now on are for rows this read may not see."""
        self._pending = False
        self._event.clear()

    async def wait(self, timeout: float) -> None:
        if timeout <= 0:
            return
        with suppress(TimeoutError):
            await asyncio.wait_for(self._event.wait(), timeout)

    def release(self) -> None:
        self.hub._unsubscribe(self)


class Hub:
    """The open streams of one app, at most ``max_streams``; on PostgreSQL, their listener."""

    def __init__(self, engine: Engine, max_streams: int) -> None:
        self.max_streams = max_streams
        self.listens = engine.dialect.name == "postgresql"
        self._conninfo = (
            engine.url.set(drivername="postgresql").render_as_string(hide_password=False)
            if self.listens
            else ""
        )
        self._lock = threading.Lock()
        self._subs: set[Subscription] = set()
        self._listener: PgListener | None = None
        self.draining = False  # the server is stopping: no new streams
        with _HUBS_LOCK:
            _HUBS.add(self)

    @property
    def streams(self) -> int:
        return len(self._subs)

    @property
    def listener(self) -> PgListener | None:
        return self._listener

    def admit(self) -> None:
        """Refuse a new stream now (503) rather than after its response has begun."""
        if self.draining:
            raise StreamsBusy("服务正在重启 / the server is restarting; reconnect shortly", 3)
        if len(self._subs) >= self.max_streams:
            raise StreamsBusy("实时连接已满，请稍后重试 / too many live streams; retry shortly")

    def subscribe(self) -> Subscription | None:
        """A place for a stream starting on the running event loop; ``None`` when full (a
        race lost after ``admit``) or stopping."""
        with self._lock:
            if self.draining or len(self._subs) >= self.max_streams:
                return None
            sub = Subscription(self)
            self._subs.add(sub)
            if self.listens and self._listener is None:
                self._listener = PgListener(self._conninfo, self.wake)
                self._listener.start()
            return sub

    def _unsubscribe(self, sub: Subscription) -> None:
        with self._lock:
            self._subs.discard(sub)

    async def ready(self, timeout: float = 2.0) -> None:
        """PostgreSQL: wait (a little) until the listener listens, so a commit made after the
        stream's first read is not missed for a whole poll interval."""
        listener = self._listener
        if listener is not None and not listener.ready.is_set():
            await anyio.to_thread.run_sync(listener.ready.wait, timeout)

    def wake(self) -> None:
        with self._lock:
            subs = list(self._subs)
        for sub in subs:
            sub.wake()

    def end_streams(self) -> None:
        """Finish every open stream (their clients reconnect, elsewhere or later)."""
        with self._lock:
            subs = list(self._subs)
        for sub in subs:
            sub.end()

    def close(self) -> None:
        """End the streams and stop the listener (a new stream starts it again)."""
        self.end_streams()
        with self._lock:
            listener, self._listener = self._listener, None
        if listener is not None:
            listener.stop()


class PgListener:
    """A thread with its own connection doing ``LISTEN cityops_feed``; every notification (and
    every reconnection, which may have missed some) calls ``on_notify``."""

    POLL_S = 0.25  # how often the thread looks up from the socket to see whether to stop
    MAX_BACKOFF_S = 5.0

    def __init__(self, conninfo: str, on_notify: Callable[[], None]) -> None:
        self.conninfo = conninfo
        self.on_notify = on_notify
        self.ready = threading.Event()
        self.connections = 0  # successful connections so far (reconnects = connections - 1)
        self.backend_pid: int | None = None  # the server process serving the connection
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="cityops-live-listener", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join(timeout)

    def _run(self) -> None:
        import psycopg

        backoff = 0.1
        while not self._stop.is_set():
            try:
                with psycopg.connect(
                    self.conninfo,
                    autocommit=True,
                    application_name=f"cityops-live-{os.getpid()}",
                    connect_timeout=5,
                    keepalives=1,
                    keepalives_idle=30,
                    keepalives_interval=10,
                    keepalives_count=3,
                ) as conn:
                    conn.execute(f"LISTEN {CHANNEL}")
                    self.backend_pid = conn.info.backend_pid
                    self.connections += 1
                    self.ready.set()
                    backoff = 0.1
                    if self.connections > 1:
                        log.info("live listener: listening again")
                    self.on_notify()  # anything committed while nobody listened
                    while not self._stop.is_set():
                        for _note in conn.notifies(timeout=self.POLL_S):
                            self.on_notify()
            except Exception as exc:  # any connection failure: wait, then connect again
                self.ready.clear()
                if self._stop.is_set():
                    break
                log.warning("live listener: %s; reconnecting in %.1f s", exc, backoff)
                self._stop.wait(backoff)
                backoff = min(backoff * 2, self.MAX_BACKOFF_S)
        self.ready.clear()


def hub_of(app: FastAPI) -> Hub:
    """The app's hub, made on first use."""
    hub: Hub | None = getattr(app.state, "live_hub", None)
    if hub is None:
        hub = Hub(app.state.engine, app.state.settings.live_max_streams)
        app.state.live_hub = hub
    return hub


# --- the server's life ------------------------------------------------------------------------


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    """An event stream never ends by itself, and uvicorn waits for open responses before it
    shuts the application down: on SIGINT/SIGTERM, end the streams first, then let the server's
    own handler run. On shutdown, stop the listener."""
    hub = hub_of(app)
    hub.draining = False
    restore = _end_streams_on_exit_signals(hub)
    try:
        yield
    finally:
        restore()
        await anyio.to_thread.run_sync(hub.close)


def _end_streams_on_exit_signals(hub: Hub) -> Callable[[], None]:
    if threading.current_thread() is not threading.main_thread():
        return lambda: None  # signals reach the main thread only (a server run in a thread)
    ours: dict[int, tuple[Callable[[int, FrameType | None], None], Any]] = {}
    for sig in (signal.SIGINT, signal.SIGTERM):
        previous = signal.getsignal(sig)

        def handler(signum: int, frame: FrameType | None, previous: Any = previous) -> None:
            hub.draining = True
            hub.end_streams()
            if callable(previous):
                previous(signum, frame)
            elif previous == signal.SIG_DFL:
                signal.signal(signum, signal.SIG_DFL)
                signal.raise_signal(signum)

        signal.signal(sig, handler)
        ours[sig] = (handler, previous)

    def restore() -> None:
        for sig, (handler, previous) in ours.items():
            if signal.getsignal(sig) is handler:
                signal.signal(sig, previous)

    return restore
