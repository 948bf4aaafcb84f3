"""Fresh, empty databases for tests: a temporary SQLite file, or a new PostgreSQL database on the
server named by CITYOPS_TEST_DATABASE_URL (dropped afterwards).

Under pytest-xdist each worker has a PostgreSQL database of its own beside the named one
(``cityops_test`` → ``cityops_test_gw0``, ``cityops_test_gw1``, …), made on first use."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy import create_engine, make_url, text

from cityops.config import normalise_database_url

PG_URL = os.environ.get("CITYOPS_TEST_DATABASE_URL")
BACKENDS = ["sqlite", "postgresql"]


def worker_suffix() -> str:
    """The xdist worker's suffix ("_gw0", "_gw1", …); empty when the tests run in one process."""
    worker = os.environ.get("PYTEST_XDIST_WORKER", "")
    return f"_{worker}" if worker else ""


def reset_test_database() -> str:
    """The database CI named (or this xdist worker's own beside it), emptied: the suite's shared
    PostgreSQL database."""
    assert PG_URL, "CITYOPS_TEST_DATABASE_URL is not set"
    named = make_url(normalise_database_url(PG_URL))
    target = named
    if suffix := worker_suffix():
        target = named.set(database=f"{named.database}{suffix}")
        admin = create_engine(named, isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            exists = conn.scalar(
                text("SELECT 1 FROM pg_database WHERE datname = :n"), {"n": target.database}
            )
            if not exists:
                conn.execute(text(f'CREATE DATABASE "{target.database}"'))
        admin.dispose()
    url = target.render_as_string(hide_password=False)
    engine = create_engine(url, isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        conn.execute(text("DROP SCHEMA public CASCADE"))
        conn.execute(text("CREATE SCHEMA public"))
    engine.dispose()
    return url


@contextmanager
def fresh_database(backend: str, tmp: Path) -> Iterator[str]:
    """A scratch database of its own (migration tests, determinism): created and dropped."""
    if backend == "sqlite":
        yield f"sqlite:///{tmp / f'cityops-{uuid.uuid4().hex[:8]}.db'}"
        return
    assert PG_URL, "CITYOPS_TEST_DATABASE_URL is not set"
    server = make_url(normalise_database_url(PG_URL))
    name = f"cityops_t_{uuid.uuid4().hex[:10]}"
    admin = create_engine(server.set(database="postgres"), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield server.set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.execute(
                text("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = :n"),
                {"n": name},
            )
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}"'))
        admin.dispose()
