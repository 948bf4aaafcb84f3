"""Live-update tests run against real servers (uvicorn on a free port) over a database of their
own — streams need real commits, which the suite's rolled-back test transactions never make."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from fastapi import FastAPI
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from cityops import migrate
from cityops.app import create_app
from cityops.auth import audit
from cityops.db import make_engine, transaction, utcnow
from cityops.demo import accounts as demo_accounts
from cityops.demo import district
from cityops.live import bus
from cityops.live import service as live
from tests.conftest import test_settings
from tests.dbutil import fresh_database

# Streams re-read the feed this often whatever happens: long, so that a test passing within a
# second proves the wake-up (in-process or LISTEN/NOTIFY), not the poll.
SLOW_POLL_S = 30.0
ROOT = Path(__file__).resolve().parents[2]


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Modules saying ``POSTGRESQL_ONLY = True`` test LISTEN/NOTIFY: skip their SQLite twins
    at collection, before the session's servers would be set up for them."""
    skip = pytest.mark.skip(reason="LISTEN/NOTIFY: PostgreSQL only")
    for item in items:
        params = getattr(item, "callspec", None)
        if (
            getattr(item.module, "POSTGRESQL_ONLY", False)
            and params is not None
            and params.params.get("backend") == "sqlite"
        ):
            item.add_marker(skip)


@dataclass
class Database:
    url: str
    engine: Engine
    credentials: dict[str, str]

    @property
    def factory(self) -> sessionmaker[Session]:
        return sessionmaker(bind=self.engine, expire_on_commit=False)

    def publish(
        self, topic: str, region_code: str | None = None, *, commit: bool = True, ref: str = "x"
    ) -> int:
        """One feed item in a transaction of its own, committed (or rolled back); its id."""
        session = self.factory()
        try:
            item = live.publish(session, topic, "probe", ref, at=utcnow(), region_code=region_code)
            session.flush()
            if commit:
                session.commit()
            else:
                session.rollback()
            return item.id
        finally:
            session.close()


@pytest.fixture(scope="session")
def live_db(
    backend: str, tmp_path_factory: pytest.TempPathFactory, small_demo: district.DemoDistrict
) -> Iterator[Database]:
    with fresh_database(backend, tmp_path_factory.mktemp(f"live-{backend}")) as url:
        audit.install()
        engine = make_engine(url)
        migrate.upgrade(engine)
        with transaction(sessionmaker(bind=engine)) as session:
            district.load(session, small_demo)
            rows = demo_accounts.ensure(session, test_settings(url))
        assert rows is not None
        yield Database(url, engine, {user: secret for user, _label, secret in rows})
        engine.dispose()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Server:
    url: str
    app: FastAPI
    credentials: dict[str, str]

    @property
    def hub(self) -> bus.Hub:
        return bus.hub_of(self.app)

    def token(self, username: str) -> dict[str, str]:
        r = httpx.post(
            f"{self.url}/api/v1/auth/token",
            json={"username": username, "password": self.credentials[username]},
        )
        assert r.status_code == 200, r.text
        return {"Authorization": f"Bearer {r.json()['access_token']}"}


def run_in_thread(db: Database, **settings: Any) -> tuple[Server, Callable[[], None]]:
    """A uvicorn server in a thread with its own engine (as another process would have)."""
    engine = make_engine(db.url)
    app = create_app(test_settings(db.url, live_poll_s=SLOW_POLL_S, **settings), engine=engine)
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("live server did not start")
        time.sleep(0.02)

    def stop() -> None:
        bus.hub_of(app).end_streams()  # a server in a thread gets no SIGTERM to end them
        server.should_exit = True
        thread.join(timeout=10)
        assert not thread.is_alive(), "the server did not stop"
        engine.dispose()

    return Server(f"http://127.0.0.1:{port}", app, db.credentials), stop


@pytest.fixture(scope="session")
def server(live_db: Database) -> Iterator[Server]:
    srv, stop = run_in_thread(live_db)
    yield srv
    stop()


@dataclass
class Process:
    url: str
    proc: subprocess.Popen[bytes]


@pytest.fixture
def server_process(live_db: Database) -> Iterator[Process]:
    """``uvicorn`` in a process of its own, as production runs it (signals included)."""
    port = free_port()
    env = os.environ | {
        "CITYOPS_DATABASE_URL": live_db.url,
        "CITYOPS_LIVE_POLL_S": str(SLOW_POLL_S),
        "CITYOPS_LOG_LEVEL": "warning",
    }
    command = [sys.executable, "-m", "uvicorn", "--factory", "cityops.app:create_app"]
    proc = subprocess.Popen(
        [*command, "--host", "127.0.0.1", "--port", str(port), "--log-level", "warning"],
        env=env,
        cwd=ROOT,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while True:
        try:
            if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                break
        except httpx.TransportError:
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            raise RuntimeError("the server process did not start")
        time.sleep(0.05)
    yield Process(url, proc)
    if proc.poll() is None:
        proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=10)
