from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query, Request, Response
from fastapi.responses import JSONResponse, StreamingResponse

from cityops.auth import accounts, apikeys, audit, sessions
from cityops.auth.cookies import open_session
from cityops.auth.deps import (
    SESSION_COOKIE,
    Authenticated,
    Require,
    client_ip,
)
from cityops.auth.models import Account, ApiKey
from cityops.auth.permissions import Permission as P
from cityops.auth.principal import Principal
from cityops.auth.schemas import (
    AccountIn,
    AccountOut,
    AccountPatch,
    ApiKeyCreated,
    ApiKeyIn,
    ApiKeyOut,
    AuditOut,
    AuditPage,
    LoginIn,
    LoginOut,
    PasswordChangeIn,
    RefreshIn,
    TemporaryPasswordOut,
    TokenOut,
)
from cityops.config import Settings
from cityops.db import transaction, utcnow
from cityops.deps import DbSession
from cityops.errors import InvalidInput, Unauthenticated

router = APIRouter(prefix="/api/v1", tags=["auth"])

UserAdmin = Annotated[Principal, Depends(Require(P.users_manage))]
KeyAdmin = Annotated[Principal, Depends(Require(P.api_keys_manage))]
Auditor = Annotated[Principal, Depends(Require(P.audit_read))]
IdPath = Annotated[int, Path(ge=1, le=2**31 - 1)]


def _settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


def account_out(view: accounts.AccountView) -> AccountOut:
    a = view.account
    return AccountOut(
        id=a.id,
        username=a.username,
        mobile=a.mobile,
        name=a.person.name,
        roles=sorted(r.role for r in a.person.roles),
        region_code=view.region_code,
        unit_code=view.unit_code,
        active=a.active,
        must_change_password=a.must_change_password,
        last_login_at=a.last_login_at,
    )


def _one(session: DbSession, account: Account) -> AccountOut:
    return account_out(accounts.describe(session, [account])[0])


def _login_failed(result: accounts.LoginResult) -> JSONResponse:
    # Returned, not raised, so the request's transaction commits the failure count.
    message = (
        "账号已停用 / account disabled"
        if result.error == "disabled"
        else "用户名或密码错误 / wrong username or password"
    )
    return JSONResponse(
        {"error": {"code": "unauthenticated", "message": message}},
        status_code=401,
        headers={"WWW-Authenticate": 'Bearer realm="cityops"'},
    )


@router.post("/auth/login", response_model=LoginOut)
def login(
    body: LoginIn, request: Request, response: Response, session: DbSession
) -> LoginOut | JSONResponse:
    """Log in with a password; sets the session cookie (HttpOnly, SameSite=Lax)."""
    settings, now = _settings(request), utcnow()
    result = accounts.password_login(
        session, body.username, body.password, client_ip(request), settings, now
    )
    if result.account is None:
        return _login_failed(result)
    record = open_session(session, result.account, request, response, now)
    return LoginOut(
        account=_one(session, result.account),
        csrf_token=record.csrf_token,
        expires_at=record.expires_at,
    )


@router.post("/auth/token", response_model=TokenOut)
def token(body: LoginIn, request: Request, session: DbSession) -> TokenOut | JSONResponse:
    """Bearer tokens for the mobile app: a short-lived access token and a rotating refresh token."""
    settings, now = _settings(request), utcnow()
    result = accounts.password_login(
        session, body.username, body.password, client_ip(request), settings, now
    )
    if result.account is None:
        return _login_failed(result)
    pair = sessions.issue_tokens(session, result.account, settings, now)
    return TokenOut(**pair.__dict__)


@router.post("/auth/refresh", response_model=TokenOut)
def refresh(body: RefreshIn, request: Request, session: DbSession) -> TokenOut | JSONResponse:
    try:
        pair = sessions.refresh_tokens(session, body.refresh_token, _settings(request), utcnow())
    except Unauthenticated as exc:
        # Returned so a detected reuse (family revoked) is committed.
        return JSONResponse(exc.to_dict(), status_code=401, headers=exc.headers)
    return TokenOut(**pair.__dict__)


@router.post("/auth/logout", status_code=204)
def logout(
    principal: Authenticated, request: Request, response: Response, session: DbSession
) -> Response:
    now = utcnow()
    if principal.via == "session":
        sessions.end_session(session, request.cookies.get(SESSION_COOKIE, ""), now)
    elif principal.via == "token":
        sessions.revoke_token(session, request.headers["authorization"][7:].strip(), now)
    audit.record(session, "logout", "accounts", principal.id)
    response.status_code = 204
    response.delete_cookie(SESSION_COOKIE, path="/")
    return response


@router.post("/auth/logout-everywhere")
def logout_everywhere(
    principal: Authenticated, session: DbSession, response: Response
) -> dict[str, int]:
    if principal.kind != "person":
        raise InvalidInput("only people have sessions", field="principal")
    counts = sessions.end_everywhere(session, principal.id, utcnow())
    response.delete_cookie(SESSION_COOKIE, path="/")
    return counts


@router.get("/auth/me")
def me(principal: Authenticated, session: DbSession) -> dict[str, object]:
    body: dict[str, object] = {
        "kind": principal.kind,
        "name": principal.name,
        "roles": sorted(principal.roles),
        "permissions": sorted(principal.permissions),
        "region_code": principal.region_code,
        "via": principal.via,
    }
    if principal.kind == "person":
        body["account"] = _one(session, accounts.get_account(session, principal.id)).model_dump(
            mode="json"
        )
    return body


@router.post("/auth/password", status_code=204)
def change_password(
    body: PasswordChangeIn, principal: Authenticated, request: Request, session: DbSession
) -> Response:
    from cityops.auth.passwords import verify_password

    if principal.kind != "person":
        raise InvalidInput("only people have passwords", field="principal")
    account = accounts.get_account(session, principal.id)
    if not verify_password(account.password_hash, body.current_password):
        raise InvalidInput("当前密码错误 / the current password is wrong", field="current_password")
    accounts.set_password(session, account, body.new_password, _settings(request))
    return Response(status_code=204)


# --- accounts (admin) -----------------------------------------------------------------------


@router.get("/users")
def list_users(
    principal: UserAdmin,
    session: DbSession,
    role: Annotated[str | None, Query(max_length=30)] = None,
    q: Annotated[str | None, Query(max_length=50)] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
    offset: Annotated[int, Query(ge=0)] = 0,
) -> dict[str, object]:
    rows, total = accounts.list_accounts(
        session, principal, role=role, q=q, limit=limit, offset=offset
    )
    return {
        "items": [account_out(v) for v in accounts.describe(session, rows)],
        "total": total,
        "limit": limit,
        "offset": offset,
    }


@router.post("/users", response_model=AccountOut, status_code=201)
def create_user(
    body: AccountIn, principal: UserAdmin, request: Request, session: DbSession
) -> AccountOut:
    if not principal.sees(body.region_code):
        raise InvalidInput("超出您的管辖范围 / region outside your scope", field="region_code")
    account = accounts.create_account(
        session, accounts.NewAccount(**body.model_dump()), _settings(request)
    )
    return _one(session, account)


@router.get("/users/{account_id}", response_model=AccountOut)
def get_user(account_id: IdPath, principal: UserAdmin, session: DbSession) -> AccountOut:
    return _one(session, accounts.get_account_in_scope(session, principal, account_id))


@router.patch("/users/{account_id}", response_model=AccountOut)
def update_user(
    account_id: IdPath, body: AccountPatch, principal: UserAdmin, session: DbSession
) -> AccountOut:
    account = accounts.get_account_in_scope(session, principal, account_id)
    if body.region_code is not None and not principal.sees(body.region_code):
        raise InvalidInput("超出您的管辖范围 / region outside your scope", field="region_code")
    accounts.update_account(
        session,
        account,
        roles=body.roles,
        region_code=body.region_code,
        unit_code=body.unit_code,
        name=body.name,
        mobile=body.mobile,
    )
    if body.active is not None and body.active != account.active:
        account.active = body.active
        session.flush()
        if not body.active:
            sessions.end_everywhere(session, account.id, utcnow())
    return _one(session, account)


@router.post("/users/{account_id}/reset-password", response_model=TemporaryPasswordOut)
def reset_password(
    account_id: IdPath, principal: UserAdmin, request: Request, session: DbSession
) -> TemporaryPasswordOut:
    account = accounts.get_account_in_scope(session, principal, account_id)
    temporary = accounts.temporary_password()
    accounts.set_password(session, account, temporary, _settings(request), temporary=True)
    sessions.end_everywhere(session, account.id, utcnow())
    return TemporaryPasswordOut(account_id=account.id, temporary_password=temporary)


@router.post("/users/{account_id}/unlock")
def unlock_user(account_id: IdPath, principal: UserAdmin, session: DbSession) -> dict[str, int]:
    account = accounts.get_account_in_scope(session, principal, account_id)
    return {"cleared": accounts.unlock(session, account)}


@router.post("/users/{account_id}/logout-everywhere")
def logout_user_everywhere(
    account_id: IdPath, principal: UserAdmin, session: DbSession
) -> dict[str, int]:
    account = accounts.get_account_in_scope(session, principal, account_id)
    return sessions.end_everywhere(session, account.id, utcnow())


# --- API keys -------------------------------------------------------------------------------


def key_out(key: ApiKey) -> ApiKeyOut:
    return ApiKeyOut(
        id=key.id,
        prefix=key.prefix,
        name=key.name,
        scopes=key.scopes,
        restrict=key.restrict,
        created_at=key.created_at,
        expires_at=key.expires_at,
        revoked_at=key.revoked_at,
        last_used_at=key.last_used_at,
        last_used_ip=key.last_used_ip,
    )


@router.get("/api-keys", response_model=list[ApiKeyOut])
def list_api_keys(principal: KeyAdmin, session: DbSession) -> list[ApiKeyOut]:
    return [key_out(k) for k in apikeys.list_keys(session)]


@router.post("/api-keys", response_model=ApiKeyCreated, status_code=201)
def create_api_key(body: ApiKeyIn, principal: KeyAdmin, session: DbSession) -> ApiKeyCreated:
    plain, key = apikeys.create_key(
        session,
        name=body.name,
        scopes=body.scopes,
        created_by=principal.id,
        restrict=body.restrict,
        expires_at=body.expires_at,
    )
    return ApiKeyCreated(**key_out(key).model_dump(), key=plain)


@router.post("/api-keys/{key_id}/revoke", response_model=ApiKeyOut)
def revoke_api_key(key_id: IdPath, principal: KeyAdmin, session: DbSession) -> ApiKeyOut:
    return key_out(apikeys.revoke(session, apikeys.get_key(session, key_id), utcnow()))


# --- audit log ------------------------------------------------------------------------------


def audit_filters(
    actor_kind: Annotated[str | None, Query(max_length=20)] = None,
    actor_id: Annotated[str | None, Query(max_length=64)] = None,
    action: Annotated[str | None, Query(max_length=40)] = None,
    entity: Annotated[str | None, Query(max_length=40)] = None,
    entity_id: Annotated[str | None, Query(max_length=64)] = None,
    since: datetime | None = None,
    until: datetime | None = None,
) -> dict[str, object]:
    for name, value in (("since", since), ("until", until)):
        if value is not None and value.tzinfo is None:
            raise InvalidInput(f"{name} 须带时区偏移 / {name} needs a UTC offset", field=name)
    return {
        "actor_kind": actor_kind,
        "actor_id": actor_id,
        "action": action,
        "entity": entity,
        "entity_id": entity_id,
        "since": since,
        "until": until,
    }


AuditFilters = Annotated[dict[str, object], Depends(audit_filters)]


@router.get("/audit", response_model=AuditPage)
def search_audit(
    principal: Auditor,
    session: DbSession,
    filters: AuditFilters,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    offset: Annotated[int, Query(ge=0)] = 0,
) -> AuditPage:
    rows, total = audit.search(session, limit, offset, **filters)
    return AuditPage(
        items=[AuditOut.model_validate(r, from_attributes=True) for r in rows],
        total=total,
        limit=limit,
        offset=offset,
    )


@router.get("/audit.csv", response_class=StreamingResponse)
def export_audit(
    principal: Auditor, request: Request, session: DbSession, filters: AuditFilters
) -> StreamingResponse:
    audit.record(
        session,
        "export",
        "audit_log",
        summary={"filters": {k: str(v) for k, v in filters.items() if v}},
    )
    factory = request.app.state.session_factory

    def body() -> Iterator[str]:
        # The request's session is closed once the route returns; the stream reads in its own.
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        buffer.write("\ufeff")  # so Excel opens UTF-8 Chinese correctly
        writer.writerow(audit.CSV_COLUMNS)
        with transaction(factory) as reader:
            for row in audit.csv_rows(reader, **filters):
                writer.writerow(row)
                if buffer.tell() > 65536:
                    yield buffer.getvalue()
                    buffer.seek(0)
                    buffer.truncate()
        yield buffer.getvalue()

    stamp = (utcnow() + timedelta(hours=8)).strftime("%Y%m%d-%H%M")
    return StreamingResponse(
        body(),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="audit-{stamp}.csv"'},
    )
