from __future__ import annotations

from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect, text

from cityops import migrate
from cityops.db import make_engine
from cityops.models import Base
from tests.conftest import _skip_without_pg
from tests.dbutil import BACKENDS, fresh_database


@pytest.mark.parametrize("backend", BACKENDS)
def test_upgrade_downgrade_upgrade(backend: str, tmp_path: Path) -> None:
    _skip_without_pg(backend)
    with fresh_database(backend, tmp_path) as url:
        engine = make_engine(url)
        try:
            migrate.upgrade(engine)
            assert migrate.current(engine) == migrate.head()
            tables = set(inspect(engine).get_table_names())
            assert {"regions", "units", "people", "person_roles", "duty_shifts"} <= tables

            migrate.downgrade(engine, "base")
            assert migrate.current(engine) is None
            assert set(inspect(engine).get_table_names()) <= {"alembic_version"}

            migrate.upgrade(engine)
            assert migrate.current(engine) == migrate.head()
        finally:
            engine.dispose()


@pytest.mark.parametrize("backend", BACKENDS)
def test_migrations_match_the_models(backend: str, tmp_path: Path) -> None:
    """A model change without a migration (or the reverse) fails here."""
    _skip_without_pg(backend)
    with fresh_database(backend, tmp_path) as url:
        engine = make_engine(url)
        try:
            migrate.upgrade(engine)
            with engine.connect() as conn:
                ctx = MigrationContext.configure(conn, opts={"compare_type": True})
                diff = compare_metadata(ctx, Base.metadata)
            assert diff == []
        finally:
            engine.dispose()


def test_migration_files_are_date_slugged() -> None:
    names = [p.name for p in (migrate.migrations_dir() / "versions").glob("*.py")]
    assert names
    assert all(n[:8].isdigit() and n[8] == "_" for n in names), names


@pytest.mark.parametrize("backend", BACKENDS)
def test_upgrade_keeps_existing_rows(backend: str, tmp_path: Path) -> None:
    """Migrations run on a populated database, not only on an empty one."""
    _skip_without_pg(backend)
    with fresh_database(backend, tmp_path) as url:
        engine = make_engine(url)
        try:
            migrate.upgrade(engine, "20261129_0001")
            now = "2026-07-15 00:00:00"
            with engine.begin() as conn:
                conn.execute(
                    text(
                        "INSERT INTO regions (id, code, level, name, geometry, center_lon,"
                        " center_lat, min_lon, min_lat, max_lon, max_lat, area_km2, synthetic,"
                        " created_at, updated_at) VALUES (1, '500154', 'district', '开州区', '{}',"
                        " 108.4, 31.2, 108, 31, 109, 32, 1, false, :now, :now)"
                    ),
                    {"now": now},
                )
                conn.execute(
                    text(
                        "INSERT INTO units (id, code, name, short_name, kind, region_id, duties,"
                        " one_window, active, created_at) VALUES (1, 'DC', '中心', '中心',"
                        " 'district_center', 1, '', false, true, :now)"
                    ),
                    {"now": now},
                )
                conn.execute(
                    text(
                        "INSERT INTO people (id, code, name, unit_id, region_id, title, active,"
                        " created_at) VALUES (1, 'P1', '张三', 1, 1, '', true, :now)"
                    ),
                    {"now": now},
                )
                conn.execute(text("INSERT INTO person_roles (person_id, role) VALUES (1, 'admin')"))
            migrate.upgrade(engine)
            with engine.connect() as conn:
                assert conn.execute(text("SELECT name FROM people WHERE id = 1")).scalar() == "张三"
                assert conn.execute(text("SELECT count(*) FROM person_roles")).scalar() == 1
        finally:
            engine.dispose()
