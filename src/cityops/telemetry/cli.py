"""``cityops ingest``: the MQTT ingest worker (run one or several; they share the load)."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console

if TYPE_CHECKING:
    from cityops.config import Settings

console = Console()
err = Console(stderr=True)


def register(app: typer.Typer, settings_fn: Callable[[], Settings]) -> None:
    """Add ``ingest`` to the ``cityops`` command line (``settings_fn`` exits 2 on a bad
    setting, naming it)."""

    @app.command("ingest")
    def ingest(
        mqtt: Annotated[
            str | None,
            typer.Option(
                help="broker: mqtt://host:1883, mqtts://… for TLS, user:pass@host to log in "
                "(CITYOPS_MQTT_URL)"
            ),
        ] = None,
        client_id: Annotated[
            str | None,
            typer.Option(help="stable and unique per worker (default cityops-ingest-HOSTNAME)"),
        ] = None,
        batch: Annotated[
            int | None,
            typer.Option(min=1, max=65_535, help="messages per commit (CITYOPS_MQTT_BATCH)"),
        ] = None,
        topic: Annotated[
            str | None, typer.Option(help="topic filter, one '+' (CITYOPS_MQTT_TOPIC)")
        ] = None,
        group: Annotated[
            str | None, typer.Option(help="shared-subscription group (CITYOPS_MQTT_SHARE_GROUP)")
        ] = None,
        stats_every: Annotated[
            float, typer.Option(min=1, help="seconds between one-line summaries in the log")
        ] = 60.0,
        session_expiry: Annotated[
            int,
            typer.Option(min=60, help="seconds the broker keeps this worker's messages while away"),
        ] = 7 * 86_400,
    ) -> None:
        """Store sensor readings from the MQTT broker (shared subscription, QoS 1; each batch
        committed, then acknowledged). Stops cleanly on SIGTERM / Ctrl-C."""
        run(
            settings_fn(),
            mqtt=mqtt,
            client_id=client_id,
            batch=batch,
            topic=topic,
            group=group,
            stats_every=stats_every,
            session_expiry=session_expiry,
        )


def run(
    settings: Settings,
    *,
    mqtt: str | None,
    client_id: str | None,
    batch: int | None,
    topic: str | None,
    group: str | None,
    stats_every: float,
    session_expiry: int,
) -> None:
    import logging
    import re
    import signal

    from cityops import events
    from cityops.auth import audit
    from cityops.db import engine_from_settings, session_factory
    from cityops.telemetry.directory import preload
    from cityops.telemetry.fold import Folder
    from cityops.telemetry.ingest import Policy
    from cityops.telemetry.mqtt import Config, IngestWorker, check_topic, parse_url

    def bad(name: str, problem: str) -> typer.Exit:
        err.print(f"[bold red]配置错误 / configuration error[/]\n{name}: {problem}")
        return typer.Exit(2)

    config = Config.from_settings(
        settings,
        url=mqtt,
        client_id=client_id,
        batch=batch,
        topic=topic,
        group=group,
        stats_every_s=stats_every,
        session_expiry_s=session_expiry,
    )
    try:
        parse_url(config.url)
    except ValueError as exc:
        raise bad("--mqtt" if mqtt else "CITYOPS_MQTT_URL", str(exc)) from None
    try:
        check_topic(config.topic)
    except ValueError as exc:
        raise bad("--topic" if topic else "CITYOPS_MQTT_TOPIC", str(exc)) from None
    if group is not None and not re.fullmatch(r"[A-Za-z0-9_-]+", group):
        raise bad("--group", "letters, digits, '_' and '-' only")
    if client_id is not None and not re.fullmatch(r"[A-Za-z0-9_.:-]{1,64}", client_id):
        raise bad("--client-id", "1–64 letters, digits or _ . : -")

    logging.basicConfig(
        level=settings.log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    events.configure(settings)
    audit.install()
    factory = session_factory(engine_from_settings(settings), writer=True)
    folder = Folder.background(factory, settings.telemetry_fold_interval_s)
    # With a folder beside it, each batch only stores and evaluates; the folder brings the
    # roll-ups and latest values up to date a moment later.
    worker = IngestWorker(
        factory,
        config,
        policy=Policy.from_settings(settings),
        fold=folder is None,
        on_stored=folder.stored if folder is not None else None,
    )
    signal.signal(signal.SIGTERM, lambda *_: worker.stop())
    signal.signal(signal.SIGINT, lambda *_: worker.stop())
    from cityops.cli import settle_gc

    # The device directory, loaded before the first batch rather than inside it, and then kept
    # out of the cyclic collector's way with everything else start-up made (settle_gc).
    devices = preload(factory)
    settle_gc()
    known = (
        "设备目录待载入 / device directory not loaded yet"
        if devices is None
        else f"{devices} 台设备 / devices"
    )
    console.print(
        f"接入已启动 / ingest running: {worker.broker} {config.subscription} "
        f"as {worker.client_id}, batches of up to {config.batch}, {known}"
    )
    stats = worker.run()
    if folder is not None:
        folder.stop()
    console.print(f"接入已停止 / ingest stopped: {stats.line()}")
