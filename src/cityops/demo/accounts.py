"""One demo account per role (demo mode only), with passwords printed once and kept in
``var/demo-accounts.txt`` so a newcomer can find them again."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session

from cityops.auth import accounts, apikeys
from cityops.auth.models import Account
from cityops.auth.permissions import Permission
from cityops.config import Settings
from cityops.demo.district import DISTRICT_CODE
from cityops.org.models import Person, PersonRole, Unit
from cityops.org.roles import Role

CREDENTIALS_FILE = Path("var") / "demo-accounts.txt"


@dataclass(frozen=True)
class DemoAccount:
    username: str
    label: str
    role: Role
    unit_code: str | None  # whose directory entry the account belongs to


YIHE, TAIKANG_GRID = f"{DISTRICT_CODE}024", f"{DISTRICT_CODE}024003001"
DEMO_ACCOUNTS = [
    DemoAccount("demo-admin", "系统管理员", Role.admin, f"DC-{DISTRICT_CODE}"),
    DemoAccount("demo-commander", "区指挥长", Role.district_commander, f"DC-{DISTRICT_CODE}"),
    DemoAccount("demo-leader", "区领导（只读）", Role.leader, f"DC-{DISTRICT_CODE}"),
    DemoAccount("demo-shift", "值班长", Role.shift_leader, f"DC-{DISTRICT_CODE}"),
    DemoAccount("demo-intake", "受理员", Role.intake_operator, f"DC-{DISTRICT_CODE}"),
    DemoAccount("demo-dispatcher", "区派遣员", Role.dispatcher, f"DC-{DISTRICT_CODE}"),
    DemoAccount("demo-town", "义和镇受理派遣员", Role.dispatcher, f"TC-{YIHE}"),
    DemoAccount("demo-handler", "区规划自然资源局处置人员", Role.handler, "DEPT-08"),
    DemoAccount("demo-inspector", "监督员", Role.inspector, f"DC-{DISTRICT_CODE}"),
    DemoAccount("demo-grid", "太康村网格员", Role.grid_worker, f"VS-{TAIKANG_GRID[:12]}"),
    DemoAccount("demo-citizen", "群众", Role.citizen, None),
]
DEMO_DEVICE_KEY = "演示设备（遥测上报）"


def ensure(session: Session, settings: Settings) -> list[tuple[str, str, str]] | None:
    """Create the demo accounts if missing. Returns (username, label, password) rows when
    created, None when they already existed."""
    if session.scalar(select(Account.id).where(Account.username == DEMO_ACCOUNTS[0].username)):
        return None
    rows = []
    for demo in DEMO_ACCOUNTS:
        password = accounts.temporary_password()
        new = accounts.NewAccount(
            name=demo.label,
            roles=[demo.role.value],
            region_code=DISTRICT_CODE,
            unit_code=demo.unit_code,
            username=demo.username,
            password=password,
            person_code=_directory_entry(session, demo),
        )
        accounts.create_account(session, new, settings)
        rows.append((demo.username, demo.label, password))
    key, _record = apikeys.create_key(
        session, name=DEMO_DEVICE_KEY, scopes=[Permission.telemetry_write.value], created_by=None
    )
    rows.append(("(API key)", DEMO_DEVICE_KEY, key))
    return rows


def _directory_entry(session: Session, demo: DemoAccount) -> str | None:
    if demo.unit_code is None:
        return None
    code = session.scalar(
        select(Person.code)
        .join(Unit, Person.unit_id == Unit.id)
        .where(Unit.code == demo.unit_code, Person.roles.any(PersonRole.role == demo.role.value))
        .order_by(Person.code)
        .limit(1)
    )
    if code is None:
        raise LookupError(f"demo district has no {demo.role} in {demo.unit_code}")
    return code


def write_credentials(rows: list[tuple[str, str, str]], path: Path = CREDENTIALS_FILE) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = ["# CityOps demo accounts (demo mode only; never use in production)"]
    lines += [f"{user}\t{label}\t{secret}" for user, label, secret in rows]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    path.chmod(0o600)
    return path
