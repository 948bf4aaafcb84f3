"""``cityops`` command line: serve, demo, db, regions, export."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from cityops.cockpit import cli as cockpit_cli
from cityops.config import Settings, SettingsError, get_settings
from cityops.telemetry import cli as telemetry_cli
from cityops.telemetry import simulate_cli

if TYPE_CHECKING:
    from cityops.telemetry.fold import Folder

# No locals in tracebacks: they would print database URLs with their passwords.
app = typer.Typer(
    help="CityOps 城市运行和治理中心",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_show_locals=False,
)
db_app = typer.Typer(help="数据库迁移 / database migrations", no_args_is_help=True)
regions_app = typer.Typer(help="区域边界 / region boundaries", no_args_is_help=True)
app.add_typer(db_app, name="db")
app.add_typer(regions_app, name="regions")
console = Console()
err = Console(stderr=True)


def _settings() -> Settings:
    try:
        return get_settings()
    except SettingsError as exc:
        err.print(f"[bold red]配置错误 / configuration error[/]\n{exc}")
        raise typer.Exit(2) from None


def _engine(settings: Settings):  # type: ignore[no-untyped-def]
    from cityops.auth import audit
    from cityops.db import engine_from_settings

    audit.install()
    return engine_from_settings(settings)


@db_app.command("upgrade")
def db_upgrade(revision: str = "head") -> None:
    """Apply migrations up to REVISION (default: head)."""
    from cityops import migrate

    settings = _settings()
    migrate.upgrade(_engine(settings), revision)
    console.print(f"数据库已升级 / database upgraded to {revision}: {settings.database_url}")


@db_app.command("downgrade")
def db_downgrade(revision: str) -> None:
    """Revert migrations down to REVISION ('base' removes everything)."""
    from cityops import migrate

    settings = _settings()
    migrate.downgrade(_engine(settings), revision)
    console.print(f"数据库已降级 / database downgraded to {revision}")


@db_app.command("current")
def db_current() -> None:
    """Show the database's revision and the code's head."""
    from cityops import migrate

    settings = _settings()
    console.print(
        f"database: {migrate.current(_engine(settings)) or '(empty)'}   code head: {migrate.head()}"
    )


@regions_app.command("import")
def regions_import(
    file: Annotated[Path, typer.Argument(exists=True, dir_okay=False, readable=True)],
) -> None:
    """Import real boundaries: a GeoJSON FeatureCollection, code and name per feature.

    Every problem is reported with its region code, and nothing is imported unless all is well.
    """
    from cityops.db import session_factory, transaction
    from cityops.geo.importer import ImportRejected, import_file

    settings = _settings()
    try:
        with transaction(session_factory(_engine(settings))) as session:
            result = import_file(session, file)
    except ImportRejected as exc:
        table = Table(
            "region code", "problem", title=f"{file}: {exc.message}", title_style="bold red"
        )
        for p in exc.problems:
            table.add_row(p.code, p.message)
        err.print(table)
        raise typer.Exit(2) from None
    console.print(f"导入完成 / imported: {result.created} created, {result.updated} updated")


@app.command("demo-data")
def demo_data(
    seed: int = 20240712,
    villages_per_town: Annotated[int, typer.Option(min=1, max=999)] = 12,
    grids_per_village: Annotated[int, typer.Option(min=1, max=999)] = 5,
    export: Annotated[Path | None, typer.Option(help="also export to this folder")] = None,
) -> None:
    """Build the Kaizhou demo district into an empty database (synthetic geometry)."""
    from cityops import migrate

    settings = _settings()
    engine = _engine(settings)
    migrate.upgrade(engine)
    loaded = _load_demo(settings, seed, villages_per_town, grids_per_village)
    if not loaded:
        err.print("数据库已有演示辖区 / the demo district is already loaded; use an empty database")
        raise typer.Exit(2)
    if export:
        _export(settings, export)


def _load_demo(settings: Settings, seed: int, villages: int, grids: int) -> bool:
    from cityops.db import session_factory, transaction
    from cityops.demo import district

    with transaction(session_factory(_engine(settings))) as session:
        if district.is_loaded(session):
            return False
        with Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=console,
            transient=True,
        ) as bar:
            task = bar.add_task("生成镇街 / generating towns", total=40)

            def tick(name: str, done: int, total: int) -> None:
                bar.update(task, completed=done, total=total, description=f"生成 {name}")

            demo = district.generate(
                district.DemoConfig(seed=seed, villages_per_town=villages, grids_per_village=grids),
                tick,
            )
            bar.update(task, description="写入数据库 / writing")
            counts = district.load(session, demo)
    console.print(
        f"演示辖区已生成 / demo district built: {counts['regions']} regions, "
        f"{counts['units']} units, "
        f"{counts['people']} people → {settings.database_url}\n"
        "[dim]边界为合成示意数据 / boundaries are synthetic[/]"
    )
    return True


def _demo_accounts(settings: Settings) -> None:
    from cityops.auth import audit
    from cityops.db import session_factory, transaction
    from cityops.demo import accounts as demo_accounts

    audit.install()
    with transaction(session_factory(_engine(settings))) as session:
        audit.set_actor(session, audit.cli_actor())
        rows = demo_accounts.ensure(session, settings)
    if rows is None:
        console.print(
            "演示账号已存在，密码见 / demo accounts exist; passwords in "
            f"{demo_accounts.CREDENTIALS_FILE}"
        )
        return
    path = demo_accounts.write_credentials(rows)
    table = Table(title="演示账号 / demo accounts")
    table.add_column("用户名 / username", no_wrap=True)
    table.add_column("角色 / role")
    table.add_column("密码 / password", overflow="fold")
    for row in rows:
        table.add_row(*row)
    console.print(table)
    console.print(f"[dim]已保存到 / saved to {path} (demo mode only)[/]")


@app.command("catalog-load")
def catalog_load(
    file: Annotated[Path | None, typer.Argument(exists=True, dir_okay=False)] = None,
) -> None:
    """Load case categories (the packaged default, or a district's own YAML): upsert by code."""
    from cityops.auth import audit
    from cityops.catalog import service as catalog
    from cityops.db import session_factory, transaction
    from cityops.errors import CityOpsError

    settings = _settings()
    try:
        with transaction(session_factory(_engine(settings))) as session:
            audit.set_actor(session, audit.cli_actor())
            with audit.bulk(session, "import", "categories") as summary:
                result = catalog.load_file(session, file) if file else catalog.load(session)
                summary.update(created=result.created, updated=result.updated)
    except CityOpsError as exc:
        err.print(f"[bold red]{exc.message}[/]")
        raise typer.Exit(2) from None
    console.print(f"类别已载入 / categories: {result.created} created, {result.updated} updated")
    if result.unresolved_owners:
        missing = ", ".join(result.unresolved_owners)
        console.print(f"[yellow]未找到的部门 / departments not found: {missing}[/]")


@app.command("export")
def export_cmd(
    folder: Path,
    unmask: Annotated[bool, typer.Option(help="full phone numbers and names (audited)")] = False,
) -> None:
    """Export regions (GeoJSON), units, people and duty (CSV) to FOLDER."""
    _export(_settings(), folder, unmask=unmask)


def _export(settings: Settings, folder: Path, *, unmask: bool = False) -> None:
    from cityops.auth import audit
    from cityops.db import session_factory, transaction
    from cityops.exports import export_all

    with transaction(session_factory(_engine(settings))) as session:
        audit.set_actor(session, audit.cli_actor())
        written = export_all(session, folder, unmask=unmask)
    console.print(f"已导出 / exported: {', '.join(str(p) for p in written)}")


@app.command("serve")
def serve(
    host: str | None = None, port: Annotated[int | None, typer.Option(min=1, max=65535)] = None
) -> None:
    """Run the web server (production: several of these behind a proxy)."""
    settings = _settings()
    _serve(settings, host, port)


def _serve(settings: Settings, host: str | None, port: int | None) -> None:
    import uvicorn

    from cityops.app import create_app
    from cityops.telemetry.directory import preload

    application = create_app(settings)
    folder = _start_folder(settings)
    application.state.folder = folder  # HTTP batches then leave folding to it
    preload(application.state.session_factory)  # before the first batch, as `cityops ingest`
    settle_gc()
    uvicorn.run(
        application,
        host=host or settings.host,
        port=port or settings.port,
        log_level=settings.log_level,
        proxy_headers=True,
    )
    if folder is not None:
        folder.stop()  # what the last batches stored, folded before the process ends


def settle_gc() -> None:
    """Move what start-up built (modules, ORM mappers, templates: some 200,000 objects) out of
    the cyclic garbage collector's sight. A busy process allocates tens of thousands of
    short-lived objects per batch of readings, and each full collection would otherwise walk
    all of them again: measured, ~90 ms per collection, several a second under load — half
    the time of an HTTP batch. Reference counting still frees everything as before."""
    import gc

    gc.collect()
    gc.freeze()


def _start_folder(settings: Settings) -> Folder | None:
    """Fold the readings this process stores (HTTP batches) into the roll-ups and latest
    values every CITYOPS_TELEMETRY_FOLD_INTERVAL_S (cityops.telemetry.fold)."""
    from cityops.db import session_factory
    from cityops.telemetry.fold import Folder

    factory = session_factory(_engine(settings), writer=True)
    return Folder.background(factory, settings.telemetry_fold_interval_s)


@app.command("worker")
def worker(
    once: Annotated[bool, typer.Option(help="take the steps due now and exit")] = False,
) -> None:
    """Run the clock worker: warn, urge, supervise and escalate cases as their limits run out.
    Run one or several (they never take the same step twice)."""
    import signal
    import threading

    from cityops import events
    from cityops.db import session_factory
    from cityops.events import jobs

    settings = _settings()
    events.configure(settings)
    factory = session_factory(_engine(settings), writer=True)
    if once:
        tally = jobs.run_due(factory)
        console.print(f"时限处理 / clock steps: {tally.steps or 'none due'}")
        return
    from cityops.notify.channels import from_settings

    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    if not settings.notify_sms_url:
        console.print(
            "[yellow]未配置短信网关，短信仅记录 / no SMS gateway: SMS are recorded only[/]"
        )
    console.print(f"后台作业已启动 / worker running every {settings.worker_interval_s:g} s")
    from cityops.notify.channels import email_from

    channels = from_settings(
        settings.notify_sms_url,
        settings.notify_sms_token,
        settings.notify_webhook_url,
        settings.notify_webhook_token,
        email_from(settings),
    )
    jobs.loop(factory, settings.worker_interval_s, stop, channels, settings=settings)


def _demo_history(settings: Settings) -> None:
    from cityops.auth import audit
    from cityops.db import session_factory, transaction
    from cityops.demo import simulator
    from cityops.events import jobs

    with console.status("生成近 30 天案件 / a month of cases…"):
        with transaction(session_factory(_engine(settings))) as session:
            audit.set_actor(session, audit.Actor("system", "simulator", "演示模拟 / demo"))
            with audit.bulk(session, "demo_history", "cases") as summary:
                summary["cases"] = simulator.backfill(session)
        steps = jobs.run_due(session_factory(_engine(settings), writer=True)).steps
    console.print(f"演示案件已生成 / demo cases: {summary['cases']}; clock steps {steps}")


def _start_simulator_thread(settings: Settings) -> None:
    import threading

    from cityops.db import session_factory
    from cityops.demo import simulator

    factory = session_factory(_engine(settings), writer=True)
    threading.Thread(
        target=simulator.loop,
        args=(factory, 20.0, threading.Event()),
        name="demo-simulator",
        daemon=True,
    ).start()


def _start_worker_thread(settings: Settings) -> None:
    import threading

    from cityops.db import session_factory
    from cityops.events import jobs

    factory = session_factory(_engine(settings), writer=True)
    thread = threading.Thread(
        target=jobs.loop,
        args=(factory, settings.worker_interval_s, threading.Event()),
        kwargs={"settings": settings},
        name="clock-worker",
        daemon=True,
    )
    thread.start()


def _demo_warnings(settings: Settings) -> None:
    from cityops.auth import audit
    from cityops.db import session_factory, transaction, utcnow
    from cityops.demo import warnings as demo_warnings

    with transaction(session_factory(_engine(settings))) as session:
        audit.set_actor(session, audit.Actor("system", "simulator", "演示模拟 / demo"))
        counts = demo_warnings.seed(session, utcnow())
    if counts["risk_points"]:
        console.print(
            f"演示风险点 / risk points: {counts['risk_points']}, "
            f"{counts['households']} households, {counts['shelters']} shelters"
        )


def _start_story_thread(settings: Settings, speed: float) -> None:
    from cityops.db import session_factory
    from cityops.demo import story as demo_story
    from cityops.warning.workflow import Publishing

    demo_story.start_background(
        session_factory(_engine(settings), writer=True),
        speed=speed,
        on_step=lambda step: console.print(
            step.line(), markup=False, highlight=False, soft_wrap=True
        ),
        publishing=Publishing.from_settings(settings),
        window_days=settings.warning_window_days,
        auto_propose=settings.warning_auto_propose,
    )


@app.command("demo")
def demo(
    host: str | None = None,
    port: Annotated[int | None, typer.Option(min=1, max=65535)] = None,
    story: Annotated[
        str | None, typer.Option(help="演示故事 / replay a storyline: landslide (老沟湾)")
    ] = None,
    speed: Annotated[
        float, typer.Option(min=1.0, help="故事时钟倍速 / story clock speed-up")
    ] = 600.0,
) -> None:
    """Migrate, load the Kaizhou demo district if the database is empty, and serve."""
    from cityops import migrate
    from cityops.demo import story as demo_story

    if story is not None and story not in demo_story.STORIES:
        err.print(f"未知故事 / unknown story {story!r}: {', '.join(demo_story.STORIES)}")
        raise typer.Exit(2)
    settings = _settings().model_copy(update={"demo": True})
    migrate.upgrade(_engine(settings))
    if _load_demo(settings, 20240712, 12, 5):
        _demo_history(settings)
    _demo_accounts(settings)
    from cityops.demo import devices as demo_devices

    # In a story the story feeds its slope's devices; the regular feed leaves them alone.
    skip = (demo_story.SITE,) if story else ()
    demo_devices.start(_engine(settings), console, skip_sites=skip)
    _demo_warnings(settings)
    _start_worker_thread(settings)
    _start_simulator_thread(settings)
    if story:
        _start_story_thread(settings, speed)
    url = f"http://{host or settings.host}:{port or settings.port}/"
    console.print(f"[bold green]CityOps 演示已启动[/] → {url}  (接口文档 {url}docs)")
    _serve(settings, host, port)


def _register_users() -> None:
    from cityops import users_cli

    users_cli.register(_settings)
    app.add_typer(users_cli.users_app, name="users")
    app.add_typer(users_cli.keys_app, name="keys")


_register_users()
telemetry_cli.register(app, _settings)
cockpit_cli.register(app, _settings)
simulate_cli.register(app, _settings)
rules_app = typer.Typer(help="报警规则 / alarm rules", no_args_is_help=True)
app.add_typer(rules_app, name="rules")


@rules_app.command("load")
def rules_load(path: Path) -> None:
    """Add or update alarm rules from a YAML file (all or nothing; a bad rule is named)."""
    from cityops.alarms import rules
    from cityops.auth import audit
    from cityops.db import session_factory, transaction, utcnow
    from cityops.errors import CityOpsError

    settings = _settings()
    try:
        data = rules.parse_yaml(path.read_text(encoding="utf-8"))
        with transaction(session_factory(_engine(settings))) as session:
            audit.set_actor(session, audit.cli_actor())
            count = rules.load(session, data, utcnow())
    except (OSError, CityOpsError) as exc:
        err.print(f"[red]{exc}[/]")
        raise typer.Exit(1) from None
    console.print(f"已载入 {count} 条报警规则 / {count} alarm rules loaded from {path}")


def main() -> None:
    from sqlalchemy.exc import OperationalError

    try:
        app()
    except SettingsError as exc:  # settings read lazily deep inside a command
        err.print(f"[bold red]配置错误 / configuration error[/]\n{exc}")
        sys.exit(2)
    except OperationalError as exc:
        err.print(
            "[bold red]数据库不可达 / cannot reach the database[/] (CITYOPS_DATABASE_URL)\n"
            f"{str(exc.orig).strip() if exc.orig else exc}"
        )
        sys.exit(2)


if __name__ == "__main__":
    main()
