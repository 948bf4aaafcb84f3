"""Alembic environment: the engine comes from the caller (``cityops db``) or from settings."""

from __future__ import annotations

from alembic import context

from cityops.models import Base

config = context.config


def _engine():  # type: ignore[no-untyped-def]
    engine = config.attributes.get("engine")
    if engine is None:
        from cityops.config import get_settings
        from cityops.db import engine_from_settings

        engine = engine_from_settings(get_settings())
    return engine


def run_migrations_online() -> None:
    engine = _engine()
    with engine.connect() as connection:
        sqlite = connection.dialect.name == "sqlite"
        if sqlite:
            # Batch migrations rebuild tables (copy, drop, rename); with foreign keys on, dropping
            # a referenced table would fail. The PRAGMA only works outside a transaction, so it
            # goes straight to the driver before SQLAlchemy begins one.
            connection.connection.driver_connection.execute("PRAGMA foreign_keys=OFF")
        context.configure(
            connection=connection,
            target_metadata=Base.metadata,
            render_as_batch=connection.dialect.name == "sqlite",
            compare_type=True,
        )
        with context.begin_transaction():
            context.run_migrations()
        connection.commit()
        if sqlite:
            connection.connection.driver_connection.execute("PRAGMA foreign_keys=ON")


run_migrations_online()
