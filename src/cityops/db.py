"""Engine, sessions and the declarative base shared by every domain."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import DateTime, Engine, MetaData, create_engine, event
from sqlalchemy.orm import DeclarativeBase, Session, sessionmaker
from sqlalchemy.types import TypeDecorator

from cityops import sqlite_turns
from cityops.config import Settings, normalise_database_url

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC on every engine (SQLite stores naive text; we re-attach UTC)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime: CityOps stores timezone-aware UTC only")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def utcnow() -> datetime:
    return datetime.now(UTC)


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    # pysqlite starts transactions lazily (only before DML) and so breaks SAVEPOINT semantics;
    # switch its handling off and emit BEGIN ourselves (see _sqlite_begin).
    dbapi_conn.isolation_level = None
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute(f"PRAGMA busy_timeout={int(BUSY_TIMEOUT_S * 1000)}")
    cur.execute("PRAGMA synchronous=NORMAL")
    # Checkpoint the write-ahead log every ~40 MB rather than every 4 MB: batched ingestion
    # rewrites the same index pages commit after commit, and each checkpoint copies them
    # back (measured: half the cost of committing a 5,000-reading batch).
    cur.execute("PRAGMA wal_autocheckpoint=10000")
    # Temporary tables and sorts in memory, not in a temporary file: every fold aggregates its
    # readings through one, and the rules' look-backs sort theirs (HTTP ingestion measured 6 %
    # faster; they hold at most a fold's CHUNK of readings, a few megabytes).
    cur.execute("PRAGMA temp_store=MEMORY")
    cur.close()


BUSY_TIMEOUT_S = 5.0


def _sqlite_begin(conn: Any) -> None:
    # Writers that read first (the worker) take the write lock up front: in WAL mode a deferred
    # transaction upgrading to write after another commit fails at once instead of waiting.
    immediate = conn.get_execution_options().get("sqlite_immediate", False)
    if immediate:  # in turn with the other writers (cityops.sqlite_turns)
        path = conn.engine.url.database
        on_disk = path and path != ":memory:" and not path.startswith("file:")
        sqlite_turns.take(conn, path if on_disk else None, BUSY_TIMEOUT_S)
    conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")


def make_engine(url: str, *, pool_size: int = 10) -> Engine:
    url = normalise_database_url(url)
    if url.startswith("sqlite"):
        path = url.split("///", 1)[1] if "///" in url else ""
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, connect_args={"check_same_thread": False})
        event.listen(engine, "connect", _sqlite_pragmas)
        event.listen(engine, "begin", _sqlite_begin)
        event.listen(engine.pool, "checkin", sqlite_turns.give_back)
        event.listen(engine.pool, "invalidate", sqlite_turns.give_back)
        return engine
    engine = create_engine(url, pool_size=pool_size, max_overflow=pool_size, pool_pre_ping=True)
    event.listen(engine, "connect", _pg_session)
    return engine


def _pg_session(dbapi_conn: Any, _record: Any) -> None:
    # psycopg prepares a statement after five runs, and PostgreSQL may then switch to a generic
    # plan that cannot tell a district-wide region-code range from one grid's (measured: a
    # grid's 30-day figures went from 20 ms to 6 s at 1M cases). Plan each execution for its
    # own parameters instead.
    with dbapi_conn.cursor() as cur:
        cur.execute("SET plan_cache_mode = force_custom_plan")
    dbapi_conn.commit()


def engine_from_settings(settings: Settings) -> Engine:
    return make_engine(settings.database_url, pool_size=settings.db_pool_size)


def session_factory(engine: Engine, *, writer: bool = False) -> sessionmaker[Session]:
    """``writer``: transactions that read then write under contention (background jobs)."""
    bind = engine.execution_options(sqlite_immediate=True) if writer else engine
    return sessionmaker(bind=bind, expire_on_commit=False)


def readers_of(factory: sessionmaker[Session]) -> sessionmaker[Session]:
    """Sessions on the same database that only read: on SQLite they neither take the write
    lock nor wait their turn for it."""
    bind = factory.kw["bind"]
    return sessionmaker(bind=bind.execution_options(sqlite_immediate=False), expire_on_commit=False)


def writer_turns(factory: sessionmaker[Session]) -> sqlite_turns.Usage | None:
    """This process's write turns on the SQLite database behind ``factory`` so far (None
    before its first, and on PostgreSQL)."""
    return sqlite_turns.usage(factory.kw["bind"].pool)


@contextmanager
def transaction(factory: sessionmaker[Session]) -> Iterator[Session]:
    """A unit of work for jobs and commands: commit on success, roll back on error."""
    session = factory()
    try:
        yield session
        session.commit()
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()
