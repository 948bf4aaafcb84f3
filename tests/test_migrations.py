from __future__ import annotations

from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect

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
