"""Accounts: creation, validation, log-in by password, and the principal they act as."""

from __future__ import annotations

import contextlib
import re
import secrets
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import or_, select
from sqlalchemy.orm import Session, selectinload

from cityops.auth import audit, throttle
from cityops.auth.models import Account
from cityops.auth.passwords import check_policy, dummy_hash, hash_password, verify_password
from cityops.auth.permissions import permissions_of
from cityops.auth.principal import Principal
from cityops.config import Settings
from cityops.db import utcnow
from cityops.errors import Conflict, InvalidInput, NotFound
from cityops.geo import service as geo
from cityops.geo.models import Region
from cityops.org import service as org
from cityops.org.models import Person, PersonRole
from cityops.org.roles import Role

USERNAME_RE = re.compile(r"^[a-z0-9][a-z0-9._-]{2,31}$")
MOBILE_RE = re.compile(r"^1[3-9]\d{9}$")
NAME_MAX = 50


def normalise_username(raw: str, *, field: str = "username") -> str:
    """NFKC then case-fold, so full-width or upper-case look-alikes are the same name; then only
    ASCII letters, digits and . _ - remain allowed (Cyrillic 'а' is not Latin 'a')."""
    name = unicodedata.normalize("NFKC", raw).strip().casefold()
    if not USERNAME_RE.match(name):
        raise InvalidInput(
            "用户名须为 3–32 位小写字母、数字或 . _ - / username: 3–32 of a-z 0-9 . _ -",
            field=field,
        )
    return name


def normalise_mobile(raw: str, *, field: str = "mobile") -> str:
    mobile = unicodedata.normalize("NFKC", raw).strip().replace(" ", "").replace("-", "")
    mobile = mobile.removeprefix("+86")
    if not MOBILE_RE.match(mobile):
        raise InvalidInput(
            "手机号须为 11 位中国大陆号码 / mobile: 11-digit mainland number", field=field
        )
    return mobile


def clean_display_name(raw: str, *, field: str = "name") -> str:
    name = unicodedata.normalize("NFKC", raw).strip()
    if not 1 <= len(name) <= NAME_MAX:
        raise InvalidInput(
            f"姓名须为 1–{NAME_MAX} 个字符 / name: 1–{NAME_MAX} characters", field=field
        )
    if any(unicodedata.category(ch) in {"Cc", "Cf"} for ch in name):
        raise InvalidInput("姓名含不可见字符 / name contains control characters", field=field)
    return name


def parse_roles(raw: Sequence[str], *, field: str = "roles") -> list[Role]:
    if not raw:
        raise InvalidInput("至少需要一个角色 / at least one role is required", field=field)
    roles = []
    for value in raw:
        try:
            roles.append(Role(value))
        except ValueError:
            known = ", ".join(r.value for r in Role if r is not Role.device)
            raise InvalidInput(
                f"未知角色 {value!r} / unknown role; known: {known}", field=field
            ) from None
        if roles[-1] is Role.device:
            raise InvalidInput(
                "设备使用 API 密钥，不是账号 / devices use API keys, not accounts", field=field
            )
    return sorted(set(roles))


def get_account(session: Session, account_id: int) -> Account:
    account = session.scalar(select(Account).where(Account.id == account_id).options(WITH_PERSON))
    if account is None:
        raise NotFound(f"账号 {account_id} 不存在 / account not found", field="id")
    return account


WITH_PERSON = selectinload(Account.person).selectinload(Person.roles)


def find_by_login(session: Session, login: str) -> Account | None:
    """By username or mobile number, normalised the same way as at creation."""
    text = unicodedata.normalize("NFKC", login).strip()
    candidates = {text.casefold()}
    with contextlib.suppress(InvalidInput):
        candidates.add(normalise_mobile(text))
    return session.scalar(
        select(Account)
        .where(or_(Account.username.in_(candidates), Account.mobile.in_(candidates)))
        .options(WITH_PERSON)
    )


@dataclass(frozen=True)
class NewAccount:
    name: str
    roles: Sequence[str]
    region_code: str
    unit_code: str | None = None
    username: str | None = None
    mobile: str | None = None
    password: str | None = None
    person_code: str | None = None  # attach to an existing directory entry instead of a new one


def create_account(session: Session, new: NewAccount, settings: Settings) -> Account:
    username = normalise_username(new.username) if new.username else None
    mobile = normalise_mobile(new.mobile) if new.mobile else None
    if not username and not mobile:
        raise InvalidInput(
            "需要用户名或手机号 / a username or a mobile number is required", field="username"
        )
    roles = parse_roles(new.roles)
    name = clean_display_name(new.name)
    if new.password is not None:
        check_policy(new.password, username=username)
    region = _region(session, new.region_code)
    unit = org.get_unit(session, new.unit_code) if new.unit_code else None
    if unit is None and roles != [Role.citizen]:
        raise InvalidInput("工作人员须属于一个单位 / staff accounts need a unit", field="unit_code")
    _ensure_unique(session, username, mobile)
    if new.person_code:
        person = session.scalar(select(Person).where(Person.code == new.person_code))
        if person is None:
            raise InvalidInput(
                f"人员 {new.person_code} 不存在 / unknown person", field="person_code"
            )
        if session.scalar(select(Account.id).where(Account.person_id == person.id)):
            raise Conflict(
                f"人员 {new.person_code} 已有账号 / already has an account", field="person_code"
            )
    else:
        person = org.add_person(
            session,
            code=f"U{secrets.token_hex(5).upper()}",
            name=name,
            unit=unit,
            region=region,
            roles=roles,
            mobile=mobile,
            title="",
        )
    account = Account(
        person=person,
        username=username,
        mobile=mobile,
        password_hash=_hash(new.password, settings) if new.password else None,
        password_changed_at=utcnow() if new.password else None,
    )
    session.add(account)
    session.flush()
    return account


def _hash(password: str, settings: Settings) -> str:
    return hash_password(
        password,
        memory_kib=settings.password_hash_memory_kib,
        time_cost=settings.password_hash_time_cost,
    )


def _region(session: Session, code: str) -> Region:
    try:
        return geo.get_region(session, code)
    except NotFound:
        raise InvalidInput(f"区域 {code} 不存在 / unknown region", field="region_code") from None


def _ensure_unique(
    session: Session, username: str | None, mobile: str | None, exclude: int | None = None
) -> None:
    for column, value, field in (
        (Account.username, username, "username"),
        (Account.mobile, mobile, "mobile"),
    ):
        if value is None:
            continue
        query = select(Account.id).where(column == value)
        if exclude is not None:
            query = query.where(Account.id != exclude)
        if session.scalar(query) is not None:
            raise Conflict(f"{value} 已被使用 / {field} {value} is already taken", field=field)


def update_account(
    session: Session,
    account: Account,
    *,
    roles: Sequence[str] | None = None,
    region_code: str | None = None,
    unit_code: str | None = None,
    name: str | None = None,
    mobile: str | None = None,
) -> Account:
    person = account.person
    if roles is not None:
        wanted = {r.value for r in parse_roles(roles)}
        current = {r.role for r in person.roles}
        person.roles = [r for r in person.roles if r.role in wanted] + [
            PersonRole(role=r) for r in sorted(wanted - current)
        ]
    if region_code is not None:
        person.region_id = _region(session, region_code).id
    if unit_code is not None:
        person.unit_id = org.get_unit(session, unit_code).id
    if name is not None:
        person.name = clean_display_name(name)
    if mobile is not None:
        normalised = normalise_mobile(mobile)
        _ensure_unique(session, None, normalised, exclude=account.id)
        account.mobile = normalised
    session.flush()
    return account


def set_password(
    session: Session,
    account: Account,
    password: str,
    settings: Settings,
    *,
    temporary: bool = False,
) -> None:
    check_policy(password, username=account.username)
    account.password_hash = _hash(password, settings)
    account.password_changed_at = utcnow()
    account.must_change_password = temporary
    session.flush()


def temporary_password() -> str:
    # Readable, unambiguous, and long enough for the policy.
    alphabet = "abcdefghjkmnpqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789"
    return "".join(secrets.choice(alphabet) for _ in range(14))


def principal_for(
    session: Session, account: Account, *, via: str, session_id: int | None = None
) -> Principal:
    person = account.person
    region_code = session.scalar(select(Region.code).where(Region.id == person.region_id)) or ""
    roles = frozenset(r.role for r in person.roles)
    return Principal(
        kind="person",
        id=account.id,
        name=person.name,
        roles=roles,
        permissions=permissions_of(roles),
        region_code=region_code,
        person_id=person.id,
        unit_id=person.unit_id,
        via=via,
        session_id=session_id,
    )


# --- log-in ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class LoginResult:
    account: Account | None
    error: str | None = None  # "invalid" | "disabled"


def throttle_keys(settings: Settings, login: str, ip: str) -> list[tuple[str, throttle.Limits]]:
    try:
        ident = normalise_mobile(login)
    except InvalidInput:
        ident = unicodedata.normalize("NFKC", login).strip().casefold()[:100]
    per_id = throttle.Limits(
        settings.login_slowdown_after, settings.login_lock_after, settings.login_lock_minutes
    )
    per_ip = throttle.Limits(
        settings.ip_slowdown_after, settings.ip_lock_after, settings.login_lock_minutes
    )
    return [(f"id:{ident}", per_id), (f"ip:{ip}", per_ip)]


def password_login(
    session: Session, login: str, password: str, ip: str, settings: Settings, now: datetime
) -> LoginResult:
    """Checks throttling (raises 429), then the password. Failures are counted and audited; the
    caller must commit even on failure so the count survives."""
    keys = throttle_keys(settings, login, ip)
    throttle.check(session, keys, now)
    account = find_by_login(session, login)
    stored = (
        account.password_hash
        if account
        else dummy_hash(settings.password_hash_memory_kib, settings.password_hash_time_cost)
    )
    ok = verify_password(stored, password)
    actor = audit.Actor("anonymous", name=login[:100], ip=ip)
    if not ok or account is None:
        locked = throttle.note_failure(session, keys, now)
        audit.record(
            session,
            "login_failed",
            "accounts",
            account.id if account else "",
            {"login": login[:100], "locked": locked},
            actor=actor,
        )
        return LoginResult(None, "invalid")
    if not account.active:
        audit.record(
            session, "login_refused", "accounts", account.id, {"reason": "disabled"}, actor=actor
        )
        return LoginResult(None, "disabled")
    throttle.clear(session, [k for k, _ in keys if k.startswith("id:")])
    account.last_login_at = now
    session.flush()
    who = audit.Actor("person", str(account.id), account.person.name, ip)
    audit.record(session, "login", "accounts", account.id, {"method": "password"}, actor=who)
    return LoginResult(account)


def unlock(session: Session, account: Account) -> int:
    keys = [f"id:{v}" for v in (account.username, account.mobile) if v]
    cleared = throttle.clear(session, keys)
    audit.record(session, "unlock", "accounts", account.id, {"cleared": cleared})
    return cleared


# --- listing --------------------------------------------------------------------------------


@dataclass(frozen=True)
class AccountView:
    account: Account
    region_code: str
    unit_code: str | None


def describe(session: Session, accounts: Sequence[Account]) -> list[AccountView]:
    from cityops.org.models import Unit

    region_ids = {a.person.region_id for a in accounts}
    unit_ids = {a.person.unit_id for a in accounts if a.person.unit_id}
    regions = {
        i: c
        for i, c in session.execute(select(Region.id, Region.code).where(Region.id.in_(region_ids)))
    }
    units = {
        i: c for i, c in session.execute(select(Unit.id, Unit.code).where(Unit.id.in_(unit_ids)))
    }
    return [
        AccountView(
            a,
            regions.get(a.person.region_id, ""),
            units.get(a.person.unit_id) if a.person.unit_id else None,
        )
        for a in accounts
    ]


def list_accounts(
    session: Session,
    principal: Principal,
    *,
    role: str | None = None,
    q: str | None = None,
    limit: int = 100,
    offset: int = 0,
) -> tuple[Sequence[Account], int]:
    """Accounts of people inside the caller's region scope."""
    from sqlalchemy import func

    query = (
        select(Account)
        .join(Person, Account.person_id == Person.id)
        .join(Region, Person.region_id == Region.id)
        .where(principal.scope(Region.code))
    )
    if role:
        query = query.where(Person.roles.any(PersonRole.role == role))
    if q:
        pattern = f"%{q.strip()}%"
        query = query.where(
            or_(
                Account.username.ilike(pattern),
                Person.name.ilike(pattern),
                Account.mobile.ilike(pattern),
            )
        )
    total = session.scalar(select(func.count()).select_from(query.subquery())) or 0
    rows = session.scalars(
        query.order_by(Account.id).limit(limit).offset(offset).options(WITH_PERSON)
    ).all()
    return rows, total


def get_account_in_scope(session: Session, principal: Principal, account_id: int) -> Account:
    """Outside the caller's scope looks exactly like absent: 404, nothing leaked."""
    account = get_account(session, account_id)
    code = session.scalar(select(Region.code).where(Region.id == account.person.region_id)) or ""
    if not principal.sees(code):
        raise NotFound(f"账号 {account_id} 不存在 / account not found", field="id")
    return account
