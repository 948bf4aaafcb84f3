"""``cityops simulate``: stream synthetic sensor readings to a running CityOps over HTTP or
MQTT, at a given total rate, in real time — a live feed for a demo, a load for a benchmark."""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from cityops.config import Settings
    from cityops.demo.devices import Place
    from cityops.telemetry.simulator import Outcome, Simulator, Sink

console = Console()
err = Console(stderr=True)

SIM_PREFIX = "SIM-"
SIM_GROUP = "GW-SIM"
# What a city's sensor estate looks like, roughly: many bays and detectors, few slopes.
SIM_MIX = [
    ("parking", 26),
    ("smoke", 24),
    ("hydrant", 10),
    ("bus_gps", 8),
    ("rfid", 6),
    ("dust", 5),
    ("noise", 5),
    ("rain", 5),
    ("water_level", 3),
    ("gnss", 4),
    ("crack", 2),
    ("inclinometer", 2),
]
SIM_LABELS = {
    "parking": "泊位地磁",
    "smoke": "烟感",
    "hydrant": "消火栓压力",
    "bus_gps": "公交定位",
    "rfid": "RFID 基站",
    "dust": "扬尘",
    "noise": "噪声",
    "rain": "雨量",
    "water_level": "水位",
    "gnss": "GNSS",
    "crack": "裂缝计",
    "inclinometer": "测斜仪",
}


def register(app: typer.Typer, settings_fn: Callable[[], Settings]) -> None:
    """Add ``simulate`` to the ``cityops`` command line."""

    @app.command("simulate")
    def simulate(
        mqtt: Annotated[
            str | None, typer.Option(help="publish to this broker (mqtt://host:1883)")
        ] = None,
        http: Annotated[
            str | None, typer.Option(help="POST to this server (http://127.0.0.1:8000)")
        ] = None,
        key: Annotated[
            str | None,
            typer.Option(
                help="API key with scope telemetry:write (--http; default: the demo device "
                "key in var/demo-accounts.txt)"
            ),
        ] = None,
        devices: Annotated[int, typer.Option(min=1, max=1_000_000, help="how many")] = 100,
        rate: Annotated[
            float, typer.Option(min=0.001, help="readings per second, all devices together")
        ] = 10.0,
        seed: Annotated[int, typer.Option(help="same seed, same readings")] = 20240712,
        duration: Annotated[
            float | None, typer.Option(min=0.1, help="seconds to run (default: until Ctrl-C)")
        ] = None,
        register_devices: Annotated[
            bool,
            typer.Option(
                "--register",
                help="first register synthetic devices SIM-000001… spread over the district "
                "until there are N",
            ),
        ] = False,
        batch: Annotated[
            int, typer.Option(min=1, max=10_000, help="readings per HTTP request at most")
        ] = 2000,
        per_gateway: Annotated[
            int,
            typer.Option(
                min=0,
                max=10_000,
                help="--mqtt: devices in a group publish through their field gateway, up to "
                "this many readings a message on cityops/{group}/telemetry (0: each device "
                "publishes its own)",
            ),
        ] = 0,
    ) -> None:
        """Stream realistic readings (rain, slopes, water, fire, sites, traffic; see
        cityops.telemetry.simulator) for N devices from the database at R readings/s."""
        run(
            settings_fn(),
            mqtt=mqtt,
            http=http,
            key=key,
            devices=devices,
            rate=rate,
            seed=seed,
            duration=duration,
            register=register_devices,
            batch=batch,
            per_gateway=per_gateway,
        )


def _demo_key(path: Path = Path("var") / "demo-accounts.txt") -> str | None:
    if not path.exists():
        return None
    for line in path.read_text(encoding="utf-8").splitlines():
        parts = line.split("\t")
        if len(parts) == 3 and parts[0] == "(API key)":
            return parts[2].strip()
    return None


def run(
    settings: Settings,
    *,
    mqtt: str | None,
    http: str | None,
    key: str | None,
    devices: int,
    rate: float,
    seed: int,
    duration: float | None,
    register: bool,
    batch: int = 2000,
    per_gateway: int = 0,
) -> None:
    from cityops.auth import audit
    from cityops.db import engine_from_settings, session_factory, transaction
    from cityops.telemetry.simulator import HttpSink, MqttSink, Simulator, devices_from_db

    if (mqtt is None) == (http is None):
        err.print(
            "[bold red]请指定 --mqtt URL 或 --http URL 之一 / give one of --mqtt or --http[/]"
        )
        raise typer.Exit(2)
    if http is not None:
        key = key or _demo_key()
        if not key:
            err.print(
                "[bold red]--http 需要 --key / --http needs --key[/] (an API key with scope "
                "telemetry:write: cityops keys create NAME --scope telemetry:write)"
            )
            raise typer.Exit(2)
    if devices / rate < 0.001:
        err.print("[bold red]--rate 过高 / at most 1,000 readings per second per device[/]")
        raise typer.Exit(2)

    audit.install()
    engine = engine_from_settings(settings)
    factory = session_factory(engine, writer=True)
    with transaction(factory) as session:
        audit.set_actor(session, audit.cli_actor())
        if register:
            created = register_sim_devices(session, devices, seed)
            if created:
                console.print(f"已登记模拟设备 / registered {created} devices {SIM_PREFIX}…")
            chosen = devices_from_db(session, sim_codes(devices))
        else:
            chosen = devices_from_db(session, limit=devices)
    engine.dispose()
    if not chosen:
        err.print(
            "[bold red]数据库中没有设备 / no devices in the database[/] "
            f"({settings.database_url}); use --register"
        )
        raise typer.Exit(2)
    if len(chosen) < devices:
        err.print(
            f"[yellow]只有 {len(chosen)} 台设备 / only {len(chosen)} devices; "
            "--register adds synthetic ones[/]"
        )
    interval = len(chosen) / rate
    sim = Simulator(chosen, seed, interval_s=interval)
    with console.status("准备 / warming up…"):  # fill the caches (slope years, parking days…)
        sim.due_ms(int(time.time() * 1000) - 1000, int(time.time() * 1000))
    sink: Sink
    try:
        if http:
            sink = HttpSink(http, key or "", batch=batch)
        elif per_gateway:
            gateways = {d.code: d.group for d in chosen}
            sink = MqttSink(mqtt or "", gateways=gateways, per_message=per_gateway)
        else:
            sink = MqttSink(mqtt or "")
    except (ConnectionError, OSError, ValueError) as exc:
        err.print(f"[bold red]无法连接 / cannot connect:[/] {exc}")
        raise typer.Exit(2) from None
    target = f"{http}" if http else f"{mqtt}"
    console.print(
        f"模拟 / simulating {len(chosen)} devices → {target}: {rate:g} readings/s "
        f"(each device every {interval:.3g} s)" + (f" for {duration:g} s" if duration else "")
    )
    totals, elapsed = _stream_with_progress(sim, sink, duration, http is not None)
    _summary(totals, elapsed, rate, len(chosen), target)
    if totals.sent == 0 and totals.failed:
        raise typer.Exit(1)


def _stream_with_progress(
    sim: Simulator, sink: Sink, duration: float | None, http: bool
) -> tuple[Outcome, float]:
    from cityops.telemetry.simulator import stream

    with Progress(
        SpinnerColumn(),
        TextColumn("[bold]{task.description}"),
        TextColumn("{task.fields[line]}"),
        TimeElapsedColumn(),
        console=console,
        transient=True,
    ) as bar:
        task = bar.add_task("发送 / sending", total=duration, line="")

        def tick(o: Outcome, seconds: float) -> None:
            line = (
                f"sent {o.sent:,}  failed {o.failed:,}"
                + (f"  rejected {o.rejected:,}" if o.rejected else "")
                + f"  {o.sent / max(seconds, 1e-9):,.0f}/s"
            )
            bar.update(task, completed=seconds, line=line)

        return stream(sim, sink, duration_s=duration, tick_s=0.2 if http else 0.1, on_tick=tick)


def _summary(o: Outcome, elapsed: float, rate: float, devices: int, target: str) -> None:
    table = Table(title="模拟结果 / simulation summary", show_header=False)
    table.add_column(style="bold")
    table.add_column(justify="right")
    table.add_row("target", target)
    table.add_row("devices", f"{devices:,}")
    table.add_row("seconds", f"{elapsed:,.1f}")
    table.add_row("sent (acknowledged)", f"{o.sent:,}")
    table.add_row("failed", f"{o.failed:,}")
    if o.stored or o.rejected:
        table.add_row("values stored / rejected", f"{o.stored:,} / {o.rejected:,}")
    if o.alarms:
        table.add_row("alarm changes", f"{o.alarms:,}")
    table.add_row("rate asked", f"{rate:,.1f}/s")
    table.add_row("rate achieved", f"{o.sent / elapsed:,.1f}/s")
    console.print(table)
    if o.last_error:
        err.print(f"[yellow]last problem:[/] {o.last_error}")


# --- synthetic devices ----------------------------------------------------------------------


def sim_codes(n: int) -> list[str]:
    return [f"{SIM_PREFIX}{i:06d}" for i in range(1, n + 1)]


def sim_device(i: int, seed: int, grids: list[Place]) -> tuple[str, str, Place, random.Random]:
    """Type and grid of synthetic device number ``i`` (the same whatever N is)."""
    rng = random.Random(f"cityops-sim:{seed}:{i}")
    kind = rng.choices([k for k, _ in SIM_MIX], [w for _, w in SIM_MIX])[0]
    return f"{SIM_PREFIX}{i:06d}", kind, grids[rng.randrange(len(grids))], rng


def register_sim_devices(session: Session, n: int, seed: int) -> int:
    """Register SIM-000001 … SIM-{n} where missing, each in a grid picked at random (a
    point near its centre), types in a city-like mix. Returns how many were created."""
    from datetime import UTC, datetime

    from sqlalchemy import select

    from cityops.auth import audit
    from cityops.demo.devices import ensure_types, places_from_db, point_in
    from cityops.telemetry import service as telemetry
    from cityops.telemetry.models import Device, DeviceGroup

    now = datetime.now(UTC)
    existing = set(session.scalars(select(Device.code).where(Device.code.like(f"{SIM_PREFIX}%"))))
    todo = [i for i, code in enumerate(sim_codes(n), start=1) if code not in existing]
    if not todo:
        return 0
    ensure_types(session, now)
    grids = [p for p in places_from_db(session) if len(p.code) == 15]
    if not grids:
        err.print("[bold red]没有网格 / the database has no grids[/] (cityops demo-data)")
        raise typer.Exit(2)
    if session.scalar(select(DeviceGroup.id).where(DeviceGroup.code == SIM_GROUP)) is None:
        telemetry.create_group(session, SIM_GROUP, "模拟设备网关 / simulated devices")
    with (
        audit.bulk(session, "import", "devices") as summary,
        Progress(
            TextColumn("[bold]登记设备 / registering"),
            TextColumn("{task.completed:,}/{task.total:,}"),
            TimeElapsedColumn(),
            console=console,
            transient=True,
        ) as bar,
    ):
        task = bar.add_task("", total=len(todo))
        for done, i in enumerate(todo, start=1):
            code, kind, grid, rng = sim_device(i, seed, grids)
            lat, lon = point_in(grid, rng, 0.5)
            telemetry.create_device(
                session,
                telemetry.DeviceInput(
                    code=code,
                    type=kind,
                    name=f"模拟{SIM_LABELS[kind]} {code}",
                    lat=lat,
                    lon=lon,
                    model="simulated",
                    group=SIM_GROUP,
                ),
                now,
            )
            if done % 200 == 0:
                bar.update(task, completed=done)
        summary.update(devices=len(todo), prefix=SIM_PREFIX)
    return len(todo)
