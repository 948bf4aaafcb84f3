"""API keys for machines and Open311 clients: shown once, stored hashed, scoped, revocable."""

from __future__ import annotations

import secrets
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import or_, select, update
from sqlalchemy.orm import Session

from cityops.auth.models import ApiKey
from cityops.auth.permissions import MACHINE_SCOPES, Permission
from cityops.auth.principal import Principal
from cityops.auth.tokens import digest, new_token, same
from cityops.errors import Conflict, InvalidInput, NotFound
from cityops.org.roles import Role

PREFIX = "cok_"
USE_EVERY = timedelta(seconds=60)  # record a key's use at most once a minute (as sessions)


def create_key(
    session: Session,
    *,
    name: str,
    scopes: Sequence[str],
    created_by: int | None,
    restrict: dict[str, Any] | None = None,
    expires_at: datetime | None = None,
) -> tuple[str, ApiKey]:
    """Returns the key in plain text (the only time it exists) and its record."""
    name = name.strip()
    if not 1 <= len(name) <= 100:
        raise InvalidInput("名称须为 1–100 个字符 / name: 1–100 characters", field="name")
    if not scopes:
        raise InvalidInput("至少需要一个权限范围 / at least one scope", field="scopes")
    allowed = sorted(s.value for s in MACHINE_SCOPES)
    for scope in scopes:
        if scope not in allowed:
            raise InvalidInput(
                f"未知权限范围 {scope!r}; allowed: {', '.join(allowed)}", field="scopes"
            )
    prefix = secrets.token_hex(4)
    secret = new_token()
    key = ApiKey(
        prefix=prefix,
        secret_hash=digest(secret),
        name=name,
        scopes=sorted(set(scopes)),
        restrict=restrict or {},
        created_by=created_by,
        expires_at=expires_at,
    )
    session.add(key)
    session.flush()
    return f"{PREFIX}{prefix}_{secret}", key


Write = Callable[[Session], object]


def key_principal(
    session: Session,
    presented: str,
    now: datetime,
    ip: str,
    *,
    hold: Callable[[Write], bool] | None = None,
) -> Principal | None:
    """The key's principal, or None; its use recorded (``record_use``) now, or — when
    ``hold`` takes the write (True) — by the caller later: a route that takes SQLite's write
    lock only for its last part (``cityops.deps.write_later``)."""
    key = _authenticate(session, presented, now)
    if key is None:
        return None
    if _use_due(key, now, ip):
        key_id = key.id

        def record(s: Session) -> None:
            record_use(s, key_id, now, ip)

        if hold is None or not hold(record):
            record(session)
    return _principal_of(key)


def _authenticate(session: Session, presented: str, now: datetime) -> ApiKey | None:
    """The key presented, if it is one of ours and still valid."""
    if not presented.startswith(PREFIX) or presented.count("_") < 2:
        return None
    prefix, _, secret = presented[len(PREFIX) :].partition("_")
    key = session.scalar(select(ApiKey).where(ApiKey.prefix == prefix))
    if key is None or not same(key.secret_hash, digest(secret)):
        return None
    if key.revoked_at is not None or (key.expires_at is not None and key.expires_at <= now):
        return None
    return key


def _principal_of(key: ApiKey) -> Principal:
    return Principal(
        kind="api_key",
        id=key.id,
        name=key.name,
        roles=frozenset({Role.device.value}),
        permissions=frozenset(Permission(s) for s in key.scopes),
        region_code="",  # machines are not limited by region; their scopes limit them
        via="api_key",
        restrict={str(k): str(v) for k, v in key.restrict.items()},
    )


def _use_due(key: ApiKey, now: datetime, ip: str) -> bool:
    """Whether this use is to be recorded (``record_use``). Asked before writing: on SQLite
    even an UPDATE that changes nothing takes the write lock."""
    last = key.last_used_at
    return last is None or last <= now - USE_EVERY or key.last_used_ip != ip[:64]


def record_use(session: Session, key_id: int, now: datetime, ip: str) -> None:
    """When and from where the key was last used: written at most once a minute, or when the
    address changes. A gateway posts many times a second; rewriting the key's row each time
    would also make PostgreSQL hold a lock on it to every request's commit, and two servers
    taking one gateway's batches would wait for each other over it. The condition is in the
    UPDATE, so a use not due to be written locks nothing."""
    ip = ip[:64]
    session.execute(
        update(ApiKey)
        .where(
            ApiKey.id == key_id,
            or_(
                ApiKey.last_used_at.is_(None),
                ApiKey.last_used_at <= now - USE_EVERY,
                ApiKey.last_used_ip.is_distinct_from(ip),
            ),
        )
        .values(last_used_at=now, last_used_ip=ip)
        .execution_options(synchronize_session="fetch")
    )


def get_key(session: Session, key_id: int) -> ApiKey:
    key = session.get(ApiKey, key_id)
    if key is None:
        raise NotFound(f"API 密钥 {key_id} 不存在 / API key not found", field="id")
    return key


def revoke(session: Session, key: ApiKey, now: datetime) -> ApiKey:
    if key.revoked_at is not None:
        raise Conflict("该密钥已吊销 / key already revoked")
    key.revoked_at = now
    session.flush()
    return key


def list_keys(session: Session) -> Sequence[ApiKey]:
    return session.scalars(select(ApiKey).order_by(ApiKey.id)).all()
