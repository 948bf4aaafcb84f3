from __future__ import annotations

import subprocess
import sys
import threading
import time
from datetime import UTC, datetime, timedelta, timezone

import pytest
from sqlalchemy import Engine, select, text
from sqlalchemy.exc import IntegrityError, StatementError
from sqlalchemy.orm import Session

from cityops import sqlite_turns
from cityops.db import make_engine, readers_of, session_factory, transaction
from cityops.geo.models import GeoState, Region
from cityops.org.models import Unit


def test_sqlite_runs_in_wal_mode_with_foreign_keys(tmp_db: str) -> None:
    engine = make_engine(tmp_db)
    with engine.connect() as conn:
        assert conn.execute(text("PRAGMA journal_mode")).scalar() == "wal"
        assert conn.execute(text("PRAGMA foreign_keys")).scalar() == 1
        assert conn.execute(text("PRAGMA synchronous")).scalar() == 1  # NORMAL
        assert conn.execute(text("PRAGMA temp_store")).scalar() == 2  # MEMORY
    engine.dispose()


def test_foreign_keys_are_enforced(session: Session) -> None:
    session.add(
        Unit(code="X-1", name="无区域", short_name="无", kind="department", region_id=999_999)
    )
    with pytest.raises(IntegrityError):
        session.flush()


def test_check_constraints_are_enforced(session: Session) -> None:
    district = session.scalars(select(Region).where(Region.code == "500154")).one()
    session.add(
        Unit(code="X-2", name="怪单位", short_name="怪", kind="spaceship", region_id=district.id)
    )
    with pytest.raises(IntegrityError):
        session.flush()


def test_times_round_trip_as_aware_utc(session: Session, engine: Engine) -> None:
    state = session.get(GeoState, 1)
    assert state is not None
    beijing = timezone(timedelta(hours=8))
    state.changed_at = datetime(2026, 7, 15, 20, 30, tzinfo=beijing)
    session.flush()
    session.expire(state)
    assert state.changed_at == datetime(2026, 7, 15, 12, 30, tzinfo=UTC)
    assert state.changed_at.tzinfo is not None


def test_naive_times_are_refused(session: Session) -> None:
    state = session.get(GeoState, 1)
    assert state is not None
    state.changed_at = datetime(2026, 7, 15, 12, 30)
    with pytest.raises(StatementError, match="naive datetime"):
        session.flush()


def test_sqlite_savepoints_do_not_commit_the_outer_transaction(tmp_db: str) -> None:
    """A released SAVEPOINT must stay inside the outer transaction (pysqlite gets this wrong
    unless BEGIN is emitted explicitly)."""
    engine = make_engine(tmp_db)
    with engine.begin() as conn:
        conn.execute(text("CREATE TABLE t (x INTEGER)"))
    with engine.connect() as conn:
        outer = conn.begin()
        nested = conn.begin_nested()
        conn.execute(text("INSERT INTO t VALUES (1)"))
        nested.commit()
        outer.rollback()
    with engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM t")).scalar() == 0
    engine.dispose()


def test_postgresql_plans_each_execution_for_its_own_parameters(
    backend: str, session: Session
) -> None:
    if backend != "postgresql":
        pytest.skip("a PostgreSQL planner setting")
    # A generic plan cannot tell a district-wide region prefix from one grid's.
    assert session.execute(text("SHOW plan_cache_mode")).scalar_one() == "force_custom_plan"


def test_sqlite_writers_of_one_process_take_turns_and_always_hand_them_back(tmp_db: str) -> None:
    """Writers of one process queue on a lock of its own before SQLite's (which would make a
    waiting thread poll in growing sleeps); every way a transaction ends hands the turn on."""
    engine = make_engine(tmp_db)
    writer = session_factory(engine, writer=True)
    with engine.begin() as conn:
        conn.execute(text("CREATE TABLE t (x INTEGER)"))

    def turn_free() -> bool:
        return not sqlite_turns.of(engine.pool, None).taken()

    with transaction(writer) as s:
        s.execute(text("INSERT INTO t VALUES (1)"))
        assert not turn_free()  # held from BEGIN IMMEDIATE …
    assert turn_free()  # … to the commit
    with pytest.raises(RuntimeError), transaction(writer) as s:
        s.execute(text("INSERT INTO t VALUES (2)"))
        raise RuntimeError("rolled back")
    assert turn_free()
    with Session(engine) as s:  # a request's session, made a writer on the spot
        s.connection(execution_options={"sqlite_immediate": True})
        assert not turn_free()
    assert turn_free()

    # A second writer waits for the first's commit, then sees what it wrote.
    first_in, seen = threading.Event(), []

    def second() -> None:
        first_in.wait(5)
        with transaction(writer) as s:
            seen.append(s.execute(text("SELECT count(*) FROM t")).scalar())

    thread = threading.Thread(target=second)
    thread.start()
    with transaction(writer) as s:
        s.execute(text("INSERT INTO t VALUES (3)"))
        first_in.set()
        thread.join(0.3)
        assert thread.is_alive() and not seen  # still waiting for its turn
    thread.join(5)
    assert seen == [2]
    assert turn_free()
    engine.dispose()


def test_sqlite_turns_are_counted_with_their_waiting_and_holding(tmp_db: str) -> None:
    """What ``cityops ingest`` logs: how many write turns this process took, how long it
    waited for them and how long it held them."""
    engine = make_engine(tmp_db)
    writer = session_factory(engine, writer=True)
    assert sqlite_turns.usage(engine.pool) is None  # never asked for a turn
    assert sqlite_turns.usage(None) is None
    with engine.begin() as conn:
        conn.execute(text("CREATE TABLE t (x INTEGER)"))
    assert sqlite_turns.usage(engine.pool) is None  # a plain transaction takes none

    held = threading.Event()

    def second() -> None:
        held.wait(5)
        with transaction(writer) as s:  # waits for the first writer's commit
            s.execute(text("INSERT INTO t VALUES (2)"))

    thread = threading.Thread(target=second)
    thread.start()
    with transaction(writer) as s:
        s.execute(text("INSERT INTO t VALUES (1)"))
        held.set()
        time.sleep(0.3)
    thread.join(5)
    usage = sqlite_turns.usage(engine.pool)
    assert usage is not None and usage.turns == 2
    assert usage.held_s >= 0.3  # the first turn alone
    assert usage.waited_s >= 0.2  # the second writer, through most of it
    later = sqlite_turns.Usage(usage.turns + 1, usage.waited_s + 1.0, usage.held_s + 2.0)
    step = later.since(usage)
    assert step.turns == 1 and step.waited_s == pytest.approx(1.0)
    assert step.held_s == pytest.approx(2.0)
    engine.dispose()


def test_sqlite_readers_of_a_writer_factory_neither_take_nor_wait_for_the_turn(
    tmp_db: str,
) -> None:
    """``readers_of``: what an ingest worker checks a batch in while another writes."""
    engine = make_engine(tmp_db)
    writer = session_factory(engine, writer=True)
    readers = readers_of(writer)
    with engine.begin() as conn:
        conn.execute(text("CREATE TABLE t (x INTEGER)"))
    read: list[int] = []

    def reader() -> None:
        with transaction(readers) as s:
            read.append(s.execute(text("SELECT count(*) FROM t")).scalar_one())

    with transaction(writer) as s:
        s.execute(text("INSERT INTO t VALUES (1)"))
        thread = threading.Thread(target=reader)
        thread.start()
        thread.join(2)  # a writer would wait here for the turn until this commit
        assert read == [0]  # read beside the writer, from before its commit
        assert sqlite_turns.of(engine.pool, None).taken()  # the writer's, still
    with transaction(readers) as s:
        assert s.execute(text("SELECT count(*) FROM t")).scalar_one() == 1
    engine.dispose()


def test_sqlite_writers_of_other_processes_wait_for_the_turn(tmp_db: str) -> None:
    """The turn is a lock on a file beside the database, which another process cannot take
    while a writer here holds it."""
    engine = make_engine(tmp_db)
    writer = session_factory(engine, writer=True)
    path = engine.url.database
    probe = (
        "import fcntl, os, sys\n"
        f"fd = os.open({path!r} + '-writers', os.O_RDWR)\n"
        "try:\n"
        "    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)\n"
        "except BlockingIOError:\n"
        "    sys.exit(3)\n"
    )

    def other_process_gets_in() -> bool:
        done = subprocess.run([sys.executable, "-c", probe], check=False, timeout=30)
        return done.returncode == 0

    with transaction(writer) as s:
        s.execute(text("SELECT 1"))
        assert not other_process_gets_in()
    assert other_process_gets_in()
    engine.dispose()
