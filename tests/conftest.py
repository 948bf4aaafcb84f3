"""Test wiring. Every database test runs once per backend: SQLite always, PostgreSQL when
CITYOPS_TEST_DATABASE_URL names a database. Each test runs in a transaction that is rolled back."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Connection, Engine
from sqlalchemy.orm import Session, sessionmaker

from cityops import migrate
from cityops.app import create_app
from cityops.config import Settings
from cityops.db import make_engine, transaction
from cityops.demo import district
from tests.dbutil import BACKENDS, PG_URL, reset_test_database

# A small district keeps set-up fast; geometry tests use the full default one.
SMALL = district.DemoConfig(villages_per_town=3, grids_per_village=2)


def _skip_without_pg(backend: str) -> None:
    if backend == "postgresql" and not PG_URL:
        pytest.skip("PostgreSQL: set CITYOPS_TEST_DATABASE_URL (.ci/run does)")


@pytest.fixture(scope="session")
def small_demo() -> district.DemoDistrict:
    return district.generate(SMALL)


@pytest.fixture(scope="session", params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    _skip_without_pg(request.param)
    return str(request.param)


@pytest.fixture(scope="session")
def db_url(backend: str, tmp_path_factory: pytest.TempPathFactory) -> str:
    if backend == "postgresql":
        return reset_test_database()
    return f"sqlite:///{tmp_path_factory.mktemp(backend) / 'cityops.db'}"


@pytest.fixture(scope="session")
def engine(db_url: str, small_demo: district.DemoDistrict) -> Iterator[Engine]:
    """A migrated database holding the small demo district, shared by the session's tests."""
    eng = make_engine(db_url)
    migrate.upgrade(eng)
    with transaction(sessionmaker(bind=eng)) as session:
        district.load(session, small_demo)
    yield eng
    eng.dispose()


@pytest.fixture
def connection(engine: Engine) -> Iterator[Connection]:
    with engine.connect() as conn:
        outer = conn.begin()
        try:
            yield conn
        finally:
            outer.rollback()


@pytest.fixture
def session(connection: Connection) -> Iterator[Session]:
    s = Session(bind=connection, join_transaction_mode="create_savepoint", expire_on_commit=False)
    try:
        yield s
    finally:
        s.close()


@pytest.fixture
def client(engine: Engine, connection: Connection, db_url: str) -> Iterator[TestClient]:
    """The app, with every request's session joined to the test's rolled-back transaction."""
    app = create_app(Settings(database_url=db_url), engine=engine)
    app.state.session_factory = sessionmaker(
        bind=connection, join_transaction_mode="create_savepoint", expire_on_commit=False
    )
    with TestClient(app, raise_server_exceptions=False) as c:
        yield c


@pytest.fixture
def tmp_db(tmp_path: Path) -> Iterator[str]:
    """An empty SQLite database (for commands that need their own)."""
    yield f"sqlite:///{tmp_path / 'cityops.db'}"
