"""``cityops users`` and ``cityops keys``: accounts and API keys from the command line."""

from __future__ import annotations

import sys
from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table
from sqlalchemy import select
from sqlalchemy.orm import Session

from cityops.auth.models import Account
from cityops.config import Settings

users_app = typer.Typer(help="账号管理 / accounts", no_args_is_help=True)
keys_app = typer.Typer(help="API 密钥 / API keys for machines", no_args_is_help=True)
console = Console()
err = Console(stderr=True)


def _context(
    settings_fn: Callable[[], Settings],
) -> tuple[Settings, AbstractContextManager[Session]]:
    from cityops.auth import audit
    from cityops.db import engine_from_settings, session_factory, transaction

    settings: Settings = settings_fn()
    audit.install()
    tx = transaction(session_factory(engine_from_settings(settings)))
    return settings, tx


def _begin(session: Session) -> None:
    from cityops.auth import audit

    audit.set_actor(session, audit.cli_actor())


def _ask_password(password_stdin: bool) -> str:
    if password_stdin:
        return sys.stdin.readline().rstrip("\n")
    return str(typer.prompt("密码 / password", hide_input=True, confirmation_prompt=True))


def _account_or_exit(session: Session, username: str) -> Account:
    from cityops.auth import accounts

    account = accounts.find_by_login(session, username)
    if account is None:
        err.print(f"[bold red]no such account: {username}[/]")
        raise typer.Exit(2)
    return account


def _fail(exc: Exception) -> None:
    message = getattr(exc, "message", str(exc))
    field = getattr(exc, "field", None)
    err.print(f"[bold red]{field + ': ' if field else ''}{message}[/]")
    raise typer.Exit(2)


def register(settings_fn: Callable[[], Settings]) -> None:
    from cityops.errors import CityOpsError

    @users_app.command("create-admin")
    def create_admin(
        username: str = "admin",
        name: str = "系统管理员",
        password_stdin: Annotated[
            bool, typer.Option(help="read the password from standard input")
        ] = False,
    ) -> None:
        """Create the first administrator (asks for a password; there is no default)."""
        from cityops.auth import accounts
        from cityops.org.models import Unit, UnitKind

        settings, tx = _context(settings_fn)
        password = _ask_password(password_stdin)
        try:
            with tx as session:
                _begin(session)
                from cityops.geo import service as geo

                district = geo.get_region(session, settings.district_code)
                unit = session.scalar(
                    select(Unit).where(
                        Unit.kind == UnitKind.district_center.value, Unit.region_id == district.id
                    )
                )
                if unit is None:
                    unit = Unit(
                        code=f"DC-{district.code}",
                        name=f"{district.name}城市运行和治理中心",
                        short_name="区治理中心",
                        kind=UnitKind.district_center.value,
                        region_id=district.id,
                    )
                    session.add(unit)
                    session.flush()
                accounts.create_account(
                    session,
                    accounts.NewAccount(
                        name=name,
                        roles=["admin"],
                        region_code=district.code,
                        unit_code=unit.code,
                        username=username,
                        password=password,
                    ),
                    settings,
                )
        except CityOpsError as exc:
            if getattr(exc, "code", "") == "not_found":
                err.print(
                    f"[bold red]区域 {settings.district_code} 不存在[/]：请先导入辖区边界 "
                    "(cityops regions import) / import the district boundary first"
                )
                raise typer.Exit(2) from None
            _fail(exc)
        console.print(f"管理员已创建 / administrator created: [bold]{username}[/]")

    @users_app.command("create")
    def create(
        username: str,
        name: str,
        role: Annotated[list[str], typer.Option(help="repeat for several roles")],
        region: Annotated[str, typer.Option(help="region scope code")],
        unit: Annotated[str | None, typer.Option(help="unit code (not for citizens)")] = None,
        mobile: str | None = None,
        password_stdin: bool = False,
    ) -> None:
        """Create an account (asks for its password)."""
        from cityops.auth import accounts

        settings, tx = _context(settings_fn)
        password = _ask_password(password_stdin)
        try:
            with tx as session:
                _begin(session)
                accounts.create_account(
                    session,
                    accounts.NewAccount(
                        name=name,
                        roles=role,
                        region_code=region,
                        unit_code=unit,
                        username=username,
                        mobile=mobile,
                        password=password,
                    ),
                    settings,
                )
        except CityOpsError as exc:
            _fail(exc)
        console.print(f"账号已创建 / account created: [bold]{username}[/]")

    @users_app.command("list")
    def list_users(role: str | None = None) -> None:
        """List accounts."""
        from cityops.auth import accounts
        from cityops.auth.permissions import permissions_of
        from cityops.auth.principal import Principal

        _settings, tx = _context(settings_fn)
        everyone = Principal("person", 0, "cli", frozenset(), permissions_of({"admin"}), "")
        with tx as session:
            rows, total = accounts.list_accounts(session, everyone, role=role, limit=10_000)
            views = accounts.describe(session, rows)
        table = Table(
            "id", "username", "name", "roles", "region", "unit", "active", title=f"{total} accounts"
        )
        for v in views:
            a = v.account
            table.add_row(
                str(a.id),
                a.username or "",
                a.person.name,
                ",".join(sorted(r.role for r in a.person.roles)),
                v.region_code,
                v.unit_code or "",
                "yes" if a.active else "no",
            )
        console.print(table)

    def _set_active(username: str, active: bool) -> None:
        from cityops.auth import sessions
        from cityops.db import utcnow

        _settings, tx = _context(settings_fn)
        with tx as session:
            _begin(session)
            account = _account_or_exit(session, username)
            account.active = active
            session.flush()
            if not active:
                sessions.end_everywhere(session, account.id, utcnow())
        console.print(f"{username}: {'enabled' if active else 'disabled, logged out everywhere'}")

    @users_app.command("disable")
    def disable(username: str) -> None:
        """Disable an account and end all its sessions and tokens."""
        _set_active(username, False)

    @users_app.command("enable")
    def enable(username: str) -> None:
        """Enable an account again."""
        _set_active(username, True)

    @users_app.command("reset")
    def reset(username: str) -> None:
        """Set a temporary password (printed once) and log the account out everywhere."""
        from cityops.auth import accounts, sessions
        from cityops.db import utcnow

        settings, tx = _context(settings_fn)
        temporary = accounts.temporary_password()
        with tx as session:
            _begin(session)
            account = _account_or_exit(session, username)
            accounts.set_password(session, account, temporary, settings, temporary=True)
            sessions.end_everywhere(session, account.id, utcnow())
        console.print(f"{username} 临时密码 / temporary password: [bold]{temporary}[/]")

    @users_app.command("unlock")
    def unlock(username: str) -> None:
        """Lift a log-in lock."""
        from cityops.auth import accounts

        _settings, tx = _context(settings_fn)
        with tx as session:
            _begin(session)
            account = _account_or_exit(session, username)
            accounts.unlock(session, account)
        console.print(f"{username}: unlocked")

    @keys_app.command("create")
    def create_key(
        name: str,
        scope: Annotated[
            list[str], typer.Option(help="telemetry:write, open311:post, regions:read")
        ],
    ) -> None:
        """Create an API key; it is printed once and stored only hashed."""
        from cityops.auth import apikeys

        _settings, tx = _context(settings_fn)
        try:
            with tx as session:
                _begin(session)
                plain, key = apikeys.create_key(session, name=name, scopes=scope, created_by=None)
        except CityOpsError as exc:
            _fail(exc)
        console.print(
            f"API key #{key.id} ({', '.join(key.scopes)}) — shown once:\n[bold]{plain}[/]"
        )

    @keys_app.command("list")
    def list_keys() -> None:
        """List API keys (never their secrets)."""
        from cityops.auth import apikeys

        _settings, tx = _context(settings_fn)
        with tx as session:
            rows = apikeys.list_keys(session)
        table = Table("id", "prefix", "name", "scopes", "last used", "revoked")
        for k in rows:
            table.add_row(
                str(k.id),
                k.prefix,
                k.name,
                ",".join(k.scopes),
                k.last_used_at.isoformat() if k.last_used_at else "",
                k.revoked_at.isoformat() if k.revoked_at else "",
            )
        console.print(table)

    @keys_app.command("revoke")
    def revoke_key(key_id: int) -> None:
        """Revoke an API key."""
        from cityops.auth import apikeys
        from cityops.db import utcnow

        _settings, tx = _context(settings_fn)
        try:
            with tx as session:
                _begin(session)
                apikeys.revoke(session, apikeys.get_key(session, key_id), utcnow())
        except CityOpsError as exc:
            _fail(exc)
        console.print(f"API key #{key_id} revoked")
