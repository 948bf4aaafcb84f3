"""Test wiring. Every database test runs once per backend: SQLite always, PostgreSQL when
CITYOPS_TEST_DATABASE_URL names a database. Each test runs in a transaction that is rolled back."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import Connection, Engine
from sqlalchemy.orm import Session, sessionmaker

from cityops import migrate
from cityops.app import create_app
from cityops.auth import audit
from cityops.config import Settings
from cityops.db import make_engine, transaction
from cityops.demo import accounts as demo_accounts
from cityops.demo import district
from tests.dbutil import BACKENDS, PG_URL, reset_test_database

# A small district keeps set-up fast; geometry tests use the full default one.
SMALL = district.DemoConfig(villages_per_town=3, grids_per_village=2)
# Argon2id at its cheapest: the tests check behaviour, not hashing cost.
FAST_HASH = {"password_hash_memory_kib": 1024, "password_hash_time_cost": 1}


def test_settings(db_url: str, **overrides: object) -> Settings:
    return Settings(database_url=db_url, **(FAST_HASH | overrides))  # type: ignore[arg-type]


def own_demo_database(path: Path, demo: district.DemoDistrict) -> tuple[Settings, Engine, str]:
    """A SQLite database of a test's own at ``path`` — migrated, with the small demo district
    and its accounts — for tests whose requests must commit: its settings, engine and the
    demo device key."""
    settings = test_settings(f"sqlite:///{path}", demo=True)
    audit.install()
    engine = make_engine(settings.database_url)
    migrate.upgrade(engine)
    with transaction(sessionmaker(bind=engine)) as s:
        district.load(s, demo)
        rows = demo_accounts.ensure(s, settings)
    assert rows is not None
    key = next(secret for user, _label, secret in rows if user == "(API key)")
    return settings, engine, key


def _skip_without_pg(backend: str) -> None:
    if backend == "postgresql" and not PG_URL:
        pytest.skip("PostgreSQL: set CITYOPS_TEST_DATABASE_URL (.ci/run does)")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Tests marked ``sqlite_only`` decide something before the database matters (which role
    may call which route): their PostgreSQL twins would repeat them at twice the cost."""
    skip = pytest.mark.skip(reason="backend-independent: checked on SQLite")
    for item in items:
        params = getattr(item, "callspec", None)
        if (
            item.get_closest_marker("sqlite_only")
            and params is not None
            and params.params.get("backend") == "postgresql"
        ):
            item.add_marker(skip)


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
def demo_db(
    db_url: str, small_demo: district.DemoDistrict
) -> Iterator[tuple[Engine, dict[str, str]]]:
    """A migrated database holding the small demo district and one demo account per role,
    shared by the session's tests; yields the engine and username → password (or device key)."""
    audit.install()
    eng = make_engine(db_url)
    migrate.upgrade(eng)
    with transaction(sessionmaker(bind=eng)) as session:
        district.load(session, small_demo)
        rows = demo_accounts.ensure(session, test_settings(db_url))
    assert rows is not None
    yield eng, {user: secret for user, _label, secret in rows}
    eng.dispose()


@pytest.fixture(scope="session")
def engine(demo_db: tuple[Engine, dict[str, str]]) -> Engine:
    return demo_db[0]


@pytest.fixture(scope="session")
def credentials(demo_db: tuple[Engine, dict[str, str]]) -> dict[str, str]:
    """username → password for the demo accounts; "(API key)" → the demo device key."""
    return demo_db[1]


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
def app(engine: Engine, connection: Connection, db_url: str) -> FastAPI:
    """The app, with every request's session joined to the test's rolled-back transaction."""
    application = create_app(test_settings(db_url), engine=engine)
    application.state.session_factory = sessionmaker(
        bind=connection, join_transaction_mode="create_savepoint", expire_on_commit=False
    )
    return application


@pytest.fixture
def anon(app: FastAPI) -> Iterator[TestClient]:
    """A client that has not logged in."""
    with TestClient(app, raise_server_exceptions=False) as c:
        yield c


def bearer(client: TestClient, username: str, password: str) -> dict[str, str]:
    r = client.post("/api/v1/auth/token", json={"username": username, "password": password})
    assert r.status_code == 200, r.text
    return {"Authorization": f"Bearer {r.json()['access_token']}"}


@pytest.fixture
def login(anon: TestClient, credentials: dict[str, str]) -> Callable[[str], dict[str, str]]:
    """login("demo-town") → Authorization headers for that demo account."""
    return lambda username: bearer(anon, username, credentials[username])


@pytest.fixture
def client(app: FastAPI, credentials: dict[str, str]) -> Iterator[TestClient]:
    """A client signed in as the demo administrator (district scope) with a bearer token."""
    with TestClient(app, raise_server_exceptions=False) as c:
        c.headers.update(bearer(c, "demo-admin", credentials["demo-admin"]))
        yield c


@pytest.fixture
def tmp_db(tmp_path: Path) -> Iterator[str]:
    """An empty SQLite database (for commands that need their own)."""
    yield f"sqlite:///{tmp_path / 'cityops.db'}"
