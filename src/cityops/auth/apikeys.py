"""API keys for machines and Open311 clients: shown once, stored hashed, scoped, revocable."""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from cityops.auth.models import ApiKey
from cityops.auth.permissions import MACHINE_SCOPES, Permission
from cityops.auth.principal import Principal
from cityops.auth.tokens import digest, new_token, same
from cityops.errors import Conflict, InvalidInput, NotFound
from cityops.org.roles import Role

PREFIX = "cok_"


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


def key_principal(session: Session, presented: str, now: datetime, ip: str) -> Principal | None:
    if not presented.startswith(PREFIX) or presented.count("_") < 2:
        return None
    prefix, _, secret = presented[len(PREFIX) :].partition("_")
    key = session.scalar(select(ApiKey).where(ApiKey.prefix == prefix))
    if key is None or not same(key.secret_hash, digest(secret)):
        return None
    if key.revoked_at is not None or (key.expires_at is not None and key.expires_at <= now):
        return None
    key.last_used_at = now
    key.last_used_ip = ip[:64]
    session.flush()
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
