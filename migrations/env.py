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
        context.configure(
            connection=connection,
            target_metadata=Base.metadata,
            render_as_batch=connection.dialect.name == "sqlite",
            compare_type=True,
        )
        with context.begin_transaction():
            context.run_migrations()
        connection.commit()


run_migrations_online()
