"""Who is calling: bearer token, API key or session cookie; permission and CSRF checks."""

from __future__ import annotations

from datetime import datetime
from functools import partial
from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy.orm import Session

from cityops.auth import apikeys, audit, sessions
from cityops.auth.permissions import Permission
from cityops.auth.principal import Principal
from cityops.auth.tokens import same
from cityops.db import utcnow
from cityops.deps import DbSession, write_later
from cityops.errors import Forbidden, Unauthenticated

SESSION_COOKIE = "cityops_session"
CSRF_HEADER = "x-csrf-token"
CSRF_FIELD = "csrf_token"
UNSAFE = {"POST", "PUT", "PATCH", "DELETE"}
CSRF_STATE = "cityops_csrf"


def client_ip(request: Request) -> str:
    return request.client.host if request.client else ""


def optional_principal(request: Request, session: DbSession) -> Principal | None:
    """Authenticate the request if it carries credentials; records the actor for the audit log."""
    now = utcnow()
    ip = client_ip(request)
    principal: Principal | None = None
    header = request.headers.get("authorization", "")
    key = request.headers.get("x-api-key")
    cookie = request.cookies.get(SESSION_COOKIE)
    if header[:7].lower() == "bearer ":
        token = header[7:].strip()
        principal = (
            _key_principal(request, session, token, now, ip)
            if token.startswith(apikeys.PREFIX)
            else sessions.token_principal(session, token, now)
        )
        if principal is None:
            raise Unauthenticated("令牌无效或已过期 / invalid or expired token")
    elif key:
        principal = _key_principal(request, session, key, now, ip)
        if principal is None:
            raise Unauthenticated("API 密钥无效 / invalid API key")
    elif cookie:
        found = sessions.session_principal(session, cookie, request.app.state.settings, now)
        if found is not None:
            principal, csrf = found
            request.state.csrf_token = csrf
    if principal is not None:
        kind = "api_key" if principal.kind == "api_key" else "person"
        audit.set_actor(session, audit.Actor(kind, str(principal.id), principal.name, ip))
        request.state.principal = principal
    else:
        audit.set_actor(session, audit.Actor("anonymous", ip=ip))
    return principal


def _key_principal(
    request: Request, session: Session, presented: str, now: datetime, ip: str
) -> Principal | None:
    """The key's use is recorded with the request's writes: in a ``reads_first`` route, once
    it has begun writing. (A person's session or token, touched once a minute, is written at
    once; on SQLite that takes the write lock early, as a deferred transaction does.)"""
    return apikeys.key_principal(session, presented, now, ip, hold=partial(write_later, request))


def current_principal(
    principal: Annotated[Principal | None, Depends(optional_principal)],
) -> Principal:
    if principal is None:
        raise Unauthenticated()
    return principal


class Require:
    """Route dependency: an authenticated caller holding every listed permission. Cookie
    sessions must also prove the request came from our own pages (CSRF token) on writes."""

    def __init__(self, *permissions: Permission) -> None:
        self.permissions = frozenset(permissions)

    async def __call__(
        self, request: Request, principal: Annotated[Principal, Depends(current_principal)]
    ) -> Principal:
        missing = [p for p in self.permissions if not principal.can(p)]
        if missing:
            raise Forbidden(
                f"无权执行此操作 / not allowed: needs {', '.join(sorted(missing))}",
                needs=sorted(missing),
            )
        if principal.via == "session" and request.method in UNSAFE:
            await check_csrf(request, getattr(request.state, "csrf_token", ""))
        return principal

    def __repr__(self) -> str:
        return f"Require({', '.join(sorted(self.permissions))})"


async def check_csrf(request: Request, expected: str) -> None:
    presented = request.headers.get(CSRF_HEADER, "")
    if not presented and request.headers.get("content-type", "").startswith(
        ("application/x-www-form-urlencoded", "multipart/form-data")
    ):
        form = await request.form()
        presented = str(form.get(CSRF_FIELD, ""))
    if not expected or not presented or not same(presented, expected):
        raise Forbidden(
            "请求校验失败，请刷新页面后重试 / CSRF check failed: reload the page and try again",
            field=CSRF_FIELD,
        )


Authenticated = Annotated[Principal, Depends(Require())]
