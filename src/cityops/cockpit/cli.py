"""``cityops cockpit rebuild``: recount the cockpit's daily roll-up from the cases."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING

import typer
from rich.console import Console

if TYPE_CHECKING:
    from cityops.config import Settings

console = Console()


def register(app: typer.Typer, settings_fn: Callable[[], Settings]) -> None:
    """Add ``cockpit rebuild`` to the ``cityops`` command line."""
    cockpit = typer.Typer(help="数字驾驶舱 / digital cockpit", no_args_is_help=True)
    app.add_typer(cockpit, name="cockpit")

    @cockpit.command("rebuild")
    def rebuild() -> None:
        """Recount the daily roll-up from the cases and their timeline.

        Needed after cases were loaded or changed behind the service layer (a bulk load): the
        case writes themselves keep it up to date."""
        from cityops.auth import audit
        from cityops.cockpit import rollup
        from cityops.db import engine_from_settings, session_factory, transaction

        settings = settings_fn()
        audit.install()
        started = time.perf_counter()
        factory = session_factory(engine_from_settings(settings))
        with console.status("汇总中 / recounting…"), transaction(factory) as session:
            audit.set_actor(session, audit.cli_actor())
            rows = rollup.rebuild(session)
        console.print(
            f"驾驶舱日汇总已重建 / cockpit roll-up rebuilt: {rows:,} rows in "
            f"{time.perf_counter() - started:.1f} s → {settings.database_url}"
        )
