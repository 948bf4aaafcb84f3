"""Single sign-on with OpenID Connect: authorization-code flow with PKCE (Authlib), ID token
verified against the provider's keys (joserfc). The provider's claims decide name, roles, unit
and region scope at every log-in, so the government identity platform stays authoritative."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from datetime import timedelta
from typing import Annotated, Any

import requests
from authlib.common.security import generate_token
from authlib.integrations.requests_client import OAuth2Session
from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse, RedirectResponse, Response
from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import KeySet
from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from cityops.auth import accounts, audit
from cityops.auth.cookies import open_session
from cityops.auth.deps import client_ip
from cityops.auth.models import Account, OidcLogin
from cityops.auth.tokens import same
from cityops.config import Settings
from cityops.db import utcnow
from cityops.deps import DbSession
from cityops.errors import CityOpsError, Forbidden, InvalidInput, NotFound
from cityops.org.roles import Role

router = APIRouter(include_in_schema=False)
PENDING_TTL = timedelta(minutes=10)
# Holds the state of the log-in this browser started: the callback must come back to it.
STATE_COOKIE = "cityops_oidc_state"
STATE_COOKIE_PATH = "/auth/oidc/"
DISCOVERY_TTL_S = 3600
_discovery: dict[str, tuple[float, dict[str, Any]]] = {}
_lock = threading.Lock()


class OidcError(CityOpsError):
    status_code = 400
    code = "oidc_error"


class OidcUnavailable(CityOpsError):
    status_code = 502
    code = "oidc_unavailable"


def discover(issuer: str, *, fresh: bool = False) -> dict[str, Any]:
    with _lock:
        cached = None if fresh else _discovery.get(issuer)
    if cached and time.monotonic() - cached[0] < DISCOVERY_TTL_S:
        return cached[1]
    try:
        doc: dict[str, Any] = requests.get(
            issuer.rstrip("/") + "/.well-known/openid-configuration", timeout=10
        ).json()
        doc["jwks"] = requests.get(doc["jwks_uri"], timeout=10).json()
    except (requests.RequestException, ValueError, KeyError) as exc:
        raise OidcUnavailable(
            f"统一身份认证平台不可达 / identity provider unreachable: {exc}"
        ) from None
    if str(doc.get("issuer", "")).rstrip("/") != issuer.rstrip("/"):
        # OpenID Connect Discovery §4.3: the document must name the issuer we asked.
        raise OidcUnavailable(
            f"身份平台配置不一致 / the provider calls itself {doc.get('issuer')!r}, not {issuer!r}"
        )
    with _lock:
        _discovery[issuer] = (time.monotonic(), doc)
    return doc


def _client(settings: Settings, redirect_uri: str) -> OAuth2Session:
    return OAuth2Session(
        settings.oidc_client_id,
        settings.oidc_client_secret,
        scope=settings.oidc_scopes,
        redirect_uri=redirect_uri,
        code_challenge_method="S256",
    )


@router.get("/auth/oidc/login", name="oidc_login")
def oidc_login(
    request: Request, session: DbSession, next: Annotated[str, Query(max_length=500)] = "/"
) -> Response:
    from cityops.web.views import safe_next

    settings: Settings = request.app.state.settings
    if not settings.oidc_issuer:
        raise NotFound("未启用统一身份认证 / single sign-on is not configured")
    meta = discover(settings.oidc_issuer)
    pending = OidcLogin(
        state=generate_token(32),
        code_verifier=generate_token(64),
        nonce=generate_token(32),
        next_url=safe_next(next),
        created_at=utcnow(),
    )
    session.add(pending)
    session.execute(delete(OidcLogin).where(OidcLogin.created_at < utcnow() - PENDING_TTL))
    url, _state = _client(settings, str(request.url_for("oidc_callback"))).create_authorization_url(
        meta["authorization_endpoint"],
        state=pending.state,
        nonce=pending.nonce,
        code_verifier=pending.code_verifier,
    )
    response = RedirectResponse(url, status_code=303)
    response.set_cookie(
        STATE_COOKIE,
        pending.state,
        max_age=int(PENDING_TTL.total_seconds()),
        path=STATE_COOKIE_PATH,
        httponly=True,
        samesite="lax",
        secure=settings.cookie_secure,
    )
    return response


@router.get("/auth/oidc/callback", name="oidc_callback")
def oidc_callback(
    request: Request,
    session: DbSession,
    state: Annotated[str, Query(max_length=100)] = "",
    code: Annotated[str, Query(max_length=2000)] = "",
    error: Annotated[str, Query(max_length=200)] = "",
) -> Response:
    settings: Settings = request.app.state.settings
    if not settings.oidc_issuer:
        raise NotFound("未启用统一身份认证 / single sign-on is not configured")
    pending = session.get(OidcLogin, state) if state else None
    if pending is None or pending.created_at < utcnow() - PENDING_TTL:
        raise OidcError(
            "登录请求无效或已过期，请重新登录 / unknown or expired log-in; start again",
            field="state",
        )
    if not same(request.cookies.get(STATE_COOKIE, ""), state):
        # Only the browser that started the log-in may finish it: otherwise a planted callback
        # link signs the victim in as the attacker (log-in CSRF), and a leaked code signs the
        # attacker in as the victim (the verifier is applied server-side, whoever calls). The
        # state is not used up here, so the right browser can still finish.
        raise OidcError(
            "登录须在发起登录的浏览器中完成，请重新登录 / "
            "finish the log-in in the browser that started it; start again",
            field="state",
        )
    session.delete(pending)
    session.flush()
    try:
        with session.begin_nested():
            response = _finish_login(
                request, session, settings, settings.oidc_issuer, pending, code, error
            )
    except CityOpsError as exc:
        # Returned, not raised: the request's transaction then commits, so the state stays used
        # up after a failure too, while the savepoint undid everything else the attempt did.
        audit.record(
            session,
            "login_refused",
            "accounts",
            summary={"method": "oidc", "reason": exc.message[:300]},
            actor=audit.Actor("anonymous", ip=client_ip(request)),
        )
        response = JSONResponse(exc.to_dict(), status_code=exc.status_code, headers=exc.headers)
    response.delete_cookie(
        STATE_COOKIE,
        path=STATE_COOKIE_PATH,
        httponly=True,
        samesite="lax",
        secure=settings.cookie_secure,
    )
    return response


def _finish_login(
    request: Request,
    session: Session,
    settings: Settings,
    issuer: str,
    pending: OidcLogin,
    code: str,
    error: str,
) -> Response:
    if error or not code:
        raise OidcError(
            f"统一身份认证平台拒绝了登录 / the identity provider refused: {error or 'no code'}"
        )
    meta = discover(issuer)
    client = _client(settings, str(request.url_for("oidc_callback")))
    try:
        token = client.fetch_token(
            meta["token_endpoint"], code=code, code_verifier=pending.code_verifier
        )
    except Exception as exc:  # Authlib raises OAuthError and requests errors here
        raise OidcError(f"换取令牌失败 / token exchange failed: {exc}") from None
    id_token = token.get("id_token", "")
    try:
        claims = verify_id_token(id_token, meta, settings, pending.nonce)
    except OidcError:
        # The provider may have rotated its signing keys since they were cached: ask once more.
        current = discover(issuer, fresh=True)
        if current["jwks"] == meta["jwks"]:
            raise
        claims = verify_id_token(id_token, current, settings, pending.nonce)
    account = account_from_claims(session, claims, settings)
    now = utcnow()
    account.last_login_at = now
    who = audit.Actor("person", str(account.id), account.person.name, client_ip(request))
    audit.record(
        session,
        "login",
        "accounts",
        account.id,
        {"method": "oidc", "sub": claims["sub"]},
        actor=who,
    )
    response = RedirectResponse(pending.next_url, status_code=303)
    open_session(session, account, request, response, now)
    return response


def verify_id_token(
    id_token: str, meta: dict[str, Any], settings: Settings, nonce: str
) -> dict[str, Any]:
    try:
        decoded = jwt.decode(id_token, KeySet.import_key_set(meta["jwks"]))
        jwt.JWTClaimsRegistry(
            iss={"essential": True, "value": str(meta.get("issuer") or settings.oidc_issuer)},
            aud={"essential": True, "value": settings.oidc_client_id},
            sub={"essential": True},
            exp={"essential": True},
            nonce={"essential": True, "value": nonce},
        ).validate(decoded.claims)
    except (JoseError, ValueError, KeyError) as exc:
        raise OidcError(f"身份令牌无效 / invalid ID token: {exc}") from None
    return dict(decoded.claims)


@dataclass(frozen=True)
class MappedClaims:
    subject: str
    username: str | None
    name: str
    roles: list[str]
    unit_code: str | None
    region_code: str


def map_roles(raw: Any, settings: Settings) -> list[str]:
    """With a role map, only mapped platform roles count; without one, the claim must name
    CityOps roles. Anything else is ignored rather than trusted (a platform group that happens
    to be called "admin" must not become a CityOps administrator through a map that omits it)."""
    values = [raw] if isinstance(raw, str) else list(raw or [])
    known = {r.value for r in Role} - {Role.device.value}
    if settings.oidc_role_map:
        mapped = {settings.oidc_role_map.get(str(v)) for v in values}
    else:
        mapped = {str(v) for v in values}
    return sorted(r for r in mapped if r in known)


def map_claims(claims: dict[str, Any], settings: Settings) -> MappedClaims:
    roles = map_roles(claims.get(settings.oidc_roles_claim), settings)
    if not roles:
        raise Forbidden("统一身份认证未分配 CityOps 角色 / no CityOps role in the identity claims")
    region = claims.get(settings.oidc_region_claim)
    if not region:
        # No silent default: a missing claim must not grant district-wide scope.
        raise Forbidden("统一身份认证未给出管辖区域 / no region scope in the identity claims")
    username = claims.get(settings.oidc_username_claim)
    return MappedClaims(
        subject=f"{settings.oidc_issuer}|{claims['sub']}",
        username=str(username) if username else None,
        name=str(claims.get(settings.oidc_name_claim) or username or claims["sub"]),
        roles=roles,
        unit_code=claims.get(settings.oidc_unit_claim),
        region_code=str(region),
    )


def account_from_claims(session: Session, claims: dict[str, Any], settings: Settings) -> Account:
    mapped = map_claims(claims, settings)
    account = session.scalar(select(Account).where(Account.oidc_subject == mapped.subject))
    if account is None:
        new = accounts.NewAccount(
            name=mapped.name,
            roles=mapped.roles,
            region_code=mapped.region_code,
            unit_code=mapped.unit_code,
            username=_free_username(session, mapped.username)
            or f"sso-{generate_token(10).lower()}",
        )
        account = accounts.create_account(session, new, settings)
        account.oidc_subject = mapped.subject
        session.flush()
    account = accounts.get_account(session, account.id)
    if not account.active:
        raise Forbidden("账号已停用 / account disabled")
    accounts.update_account(
        session,
        account,
        roles=mapped.roles,
        region_code=mapped.region_code,
        unit_code=mapped.unit_code,
        name=mapped.name,
    )
    return account


def _free_username(session: Session, wanted: str | None) -> str | None:
    """The provider's user name if it is valid and not taken. Never attach to an existing local
    account by name: that would hand the account to whoever holds that name at the provider."""
    if not wanted:
        return None
    try:
        candidate = accounts.normalise_username(wanted)
    except InvalidInput:
        return None
    return candidate if accounts.find_by_login(session, candidate) is None else None
