"""Single sign-on with OpenID Connect against a real (mock) provider running in a thread:
authorization code + PKCE, ID token checks, claim mapping, and the refusals."""

from __future__ import annotations

import base64
import hashlib
import io
import time
import warnings
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, quote, urlsplit

import httpx2
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from joserfc import jwt
from joserfc.jwk import KeySet, RSAKey
from sqlalchemy import Connection, Engine, func, select
from sqlalchemy.orm import Session, sessionmaker

from cityops.app import create_app
from cityops.auth import oidc
from cityops.auth.deps import SESSION_COOKIE
from cityops.auth.models import Account, AuditEntry, AuthSession, OidcLogin
from cityops.auth.oidc import map_roles
from cityops.config import Settings
from tests.conftest import test_settings as settings_for

with warnings.catch_warnings():  # the mock provider imports authlib.jose, deprecated upstream
    warnings.simplefilter("ignore", DeprecationWarning)
    from oidc_provider_mock import run_server_in_thread

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIApplication, WSGIEnvironment

# The mock provider (not CityOps) still calls authlib's legacy get_jwt_config.
pytestmark = pytest.mark.filterwarnings("ignore:get_jwt_config:DeprecationWarning")

CALLBACK = "http://testserver/auth/oidc/callback"
ROLE_MAP = {"城管派遣员": "dispatcher", "网格员": "grid_worker"}
YIHE = "500154024"
YIHE_CENTER = "TC-500154024"


def claims_for(username: str, **extra: Any) -> dict[str, Any]:
    """A staff member of 义和镇's town center, as the identity platform describes them."""
    base: dict[str, Any] = {
        "preferred_username": username,
        "name": "张三",
        "cityops_roles": ["城管派遣员"],  # the platform's own name, mapped to dispatcher
        "cityops_unit": YIHE_CENTER,
        "cityops_region": YIHE,
    }
    return base | extra


# --- the provider -----------------------------------------------------------------------------


@dataclass
class Provider:
    issuer: str
    token_requests: list[dict[str, list[str]]] = field(default_factory=list)

    def set_user(self, sub: str, claims: dict[str, Any]) -> None:
        r = httpx2.put(f"{self.issuer}/users/{quote(sub, safe='')}", json=claims)
        assert r.status_code == 204, r.text

    def authorize(self, authorization_url: str, sub: str) -> str:
        """Sign in at the provider as ``sub``; returns where the provider sends the browser."""
        r = httpx2.post(authorization_url, data={"sub": sub})
        assert r.status_code == 302, r.text
        return r.headers["location"]


def _recording(app: WSGIApplication, seen: list[dict[str, list[str]]]) -> WSGIApplication:
    """Keeps the form of every token request, so the test sees what the client really sent."""

    def wrapped(environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        if environ.get("PATH_INFO") == "/oauth2/token":
            body = environ["wsgi.input"].read(int(environ.get("CONTENT_LENGTH") or 0))
            seen.append(parse_qs(body.decode()))
            environ["wsgi.input"] = io.BytesIO(body)
        return app(environ, start_response)

    return wrapped


@pytest.fixture(scope="module")
def provider_server() -> Iterator[Provider]:
    with run_server_in_thread() as server:
        # The mock names itself after the Host it is reached by: use the same name throughout.
        found = Provider(f"http://localhost:{server.server_port}")
        server.app = _recording(server.app, found.token_requests)
        yield found


@pytest.fixture
def provider(provider_server: Provider) -> Provider:
    provider_server.token_requests.clear()
    return provider_server


@pytest.fixture
def sso_app(engine: Engine, connection: Connection, db_url: str, provider: Provider) -> FastAPI:
    settings = settings_for(
        db_url,
        oidc_issuer=provider.issuer,
        oidc_client_id="cityops",
        oidc_client_secret="secret",
        oidc_role_map=ROLE_MAP,
    )
    application = create_app(settings, engine=engine)
    application.state.session_factory = sessionmaker(
        bind=connection, join_transaction_mode="create_savepoint", expire_on_commit=False
    )
    return application


@pytest.fixture
def browser(sso_app: FastAPI) -> Iterator[TestClient]:
    with TestClient(sso_app, raise_server_exceptions=False) as c:
        yield c


# --- helpers ----------------------------------------------------------------------------------


def query_of(url: str) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(urlsplit(url).query).items()}


def start(browser: TestClient, next_url: str = "/") -> str:
    """Begin a log-in at CityOps; returns the provider's authorization URL."""
    r = browser.get("/auth/oidc/login", params={"next": next_url}, follow_redirects=False)
    assert r.status_code == 303, r.text
    return r.headers["location"]


def callback_path(redirect: str) -> str:
    assert redirect.startswith(CALLBACK + "?"), redirect
    return redirect.removeprefix("http://testserver")


def callback(browser: TestClient, path: str) -> httpx2.Response:
    return browser.get(path, follow_redirects=False)


def sso_login(
    browser: TestClient, provider: Provider, sub: str, claims: dict[str, Any], next_url: str = "/"
) -> httpx2.Response:
    """The whole round trip: CityOps → provider (signed in as ``sub``) → CityOps callback."""
    provider.set_user(sub, claims)
    redirect = provider.authorize(start(browser, next_url), sub)
    return callback(browser, callback_path(redirect))


def session_cookie(r: httpx2.Response) -> str | None:
    return r.cookies.get(SESSION_COOKIE)


def me(sso_app: FastAPI, cookie: str) -> dict[str, Any]:
    """/auth/me from a fresh browser holding only the session cookie."""
    with TestClient(sso_app, cookies={SESSION_COOKIE: cookie}) as c:
        r = c.get("/api/v1/auth/me")
    assert r.status_code == 200, r.text
    body: dict[str, Any] = r.json()
    return body


def s256(verifier: str) -> str:
    return (
        base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    )


def account_of(session: Session, provider: Provider, sub: str) -> Account | None:
    session.expire_all()
    return session.scalar(select(Account).where(Account.oidc_subject == f"{provider.issuer}|{sub}"))


def session_count(session: Session) -> int:
    return session.scalar(select(func.count()).select_from(AuthSession)) or 0


def error_of(r: httpx2.Response) -> dict[str, Any]:
    body: dict[str, Any] = r.json()["error"]
    return body


# --- the happy path ---------------------------------------------------------------------------


def test_login_redirect_carries_state_nonce_and_s256_challenge(
    browser: TestClient, provider: Provider, session: Session
) -> None:
    url = start(browser, "/map?town=500154024")
    assert url.startswith(f"{provider.issuer}/oauth2/authorize?")
    q = query_of(url)
    assert q["response_type"] == "code"
    assert q["client_id"] == "cityops"
    assert q["redirect_uri"] == CALLBACK
    assert "openid" in q["scope"].split()
    assert q["code_challenge_method"] == "S256"
    assert "code_verifier" not in q
    pending = session.get(OidcLogin, q["state"])
    assert pending is not None, "the pending log-in is kept server-side under its state"
    assert len(q["state"]) >= 32 and len(q["nonce"]) >= 32
    assert pending.nonce == q["nonce"]
    assert q["code_challenge"] == s256(pending.code_verifier)
    assert 43 <= len(pending.code_verifier) <= 128
    assert pending.next_url == "/map?town=500154024"

    # Two log-ins never share state, nonce or verifier.
    other = query_of(start(browser))
    assert {other["state"], other["nonce"], other["code_challenge"]}.isdisjoint(q.values())


@pytest.mark.parametrize("target", ["https://evil.example/", "//evil.example/x", "javascript:1"])
def test_next_is_kept_on_site(browser: TestClient, session: Session, target: str) -> None:
    pending = session.get(OidcLogin, query_of(start(browser, target))["state"])
    assert pending is not None and pending.next_url == "/"


def test_full_flow_logs_in_with_the_providers_claims(
    browser: TestClient, sso_app: FastAPI, provider: Provider, session: Session
) -> None:
    provider.set_user("u-1001", claims_for("zhangsan"))
    url = start(browser, "/")
    state = query_of(url)["state"]
    pending = session.get(OidcLogin, state)
    assert pending is not None
    verifier = pending.code_verifier

    redirect = provider.authorize(url, "u-1001")
    assert query_of(redirect)["state"] == state
    r = callback(browser, callback_path(redirect))

    assert r.status_code == 303, r.text
    assert r.headers["location"] == "/"
    cookie = session_cookie(r)
    assert cookie
    set_cookie = r.headers["set-cookie"].lower()
    assert "httponly" in set_cookie and "samesite=lax" in set_cookie

    # The code was redeemed with the PKCE verifier that belongs to this log-in.
    assert len(provider.token_requests) == 1
    sent = provider.token_requests[0]
    assert sent["grant_type"] == ["authorization_code"]
    assert sent["code_verifier"] == [verifier]
    assert sent["redirect_uri"] == [CALLBACK]

    body = me(sso_app, cookie)
    assert body["kind"] == "person"
    assert body["name"] == "张三"
    assert body["roles"] == ["dispatcher"]
    assert body["region_code"] == YIHE
    assert body["account"]["username"] == "zhangsan"
    assert body["account"]["unit_code"] == YIHE_CENTER
    assert body["account"]["last_login_at"] is not None

    account = account_of(session, provider, "u-1001")
    assert account is not None and account.id == body["account"]["id"]
    assert account.password_hash is None, "an SSO account has no local password"
    assert session.get(OidcLogin, state) is None, "the pending log-in is used up"
    audit = session.scalars(
        select(AuditEntry).where(
            AuditEntry.action == "login",
            AuditEntry.entity == "accounts",
            AuditEntry.entity_id == str(account.id),
        )
    ).all()
    assert [(a.summary, a.actor_kind, a.actor_name) for a in audit] == [
        ({"method": "oidc", "sub": "u-1001"}, "person", "张三")
    ]


def test_next_url_is_where_the_callback_lands(browser: TestClient, provider: Provider) -> None:
    r = sso_login(browser, provider, "u-1002", claims_for("lisi"), next_url="/map?town=500154024")
    assert r.status_code == 303, r.text
    assert r.headers["location"] == "/map?town=500154024"


def test_role_map_and_claims_refresh_at_every_login(
    browser: TestClient, sso_app: FastAPI, provider: Provider, session: Session
) -> None:
    first = sso_login(browser, provider, "u-2001", claims_for("wangwu", cityops_roles="城管派遣员"))
    assert first.status_code == 303, first.text
    cookie = session_cookie(first)
    assert cookie
    before = me(sso_app, cookie)
    assert before["roles"] == ["dispatcher"], "城管派遣员 maps to dispatcher"

    # The identity platform moves them to a grid in 义和镇 as a grid worker and renames them.
    grid = "500154024001001"
    changed = claims_for("wangwu", name="王五", cityops_roles=["网格员"], cityops_region=grid)
    second = sso_login(browser, provider, "u-2001", changed)
    assert second.status_code == 303, second.text
    cookie2 = session_cookie(second)
    assert cookie2 and cookie2 != cookie
    after = me(sso_app, cookie2)
    assert after["roles"] == ["grid_worker"]
    assert after["name"] == "王五"
    assert after["region_code"] == grid
    assert after["account"]["id"] == before["account"]["id"], "same subject, same account"
    assert after["account"]["username"] == "wangwu"
    assert len(session.scalars(select(Account).where(Account.username == "wangwu")).all()) == 1


def test_with_a_role_map_unmapped_roles_are_ignored(
    browser: TestClient, sso_app: FastAPI, provider: Provider
) -> None:
    # "admin" is not in the map: a platform group of that name must not make an administrator.
    claims = claims_for("zhaoliu", cityops_roles=["城管派遣员", "admin", "handler", "网格员"])
    r = sso_login(browser, provider, "u-2002", claims)
    assert r.status_code == 303, r.text
    cookie = session_cookie(r)
    assert cookie
    assert me(sso_app, cookie)["roles"] == ["dispatcher", "grid_worker"]


def test_without_a_role_map_only_cityops_role_names_count(idp_settings: Settings) -> None:
    plain = idp_settings.model_copy(update={"oidc_role_map": {}})
    assert map_roles(["dispatcher", "mayor", "device", "handler"], plain) == [
        "dispatcher",
        "handler",
    ]
    assert map_roles("leader", plain) == ["leader"]
    assert map_roles(None, plain) == []


def test_a_missing_region_claim_is_refused(
    browser: TestClient, provider: Provider, session: Session
) -> None:
    claims = claims_for("qianba")
    del claims["cityops_region"]
    r = sso_login(browser, provider, "u-2003", claims)
    assert r.status_code == 403 and "region" in error_of(r)["message"]
    assert account_of(session, provider, "u-2003") is None
    refused = session.scalars(select(AuditEntry).where(AuditEntry.action == "login_refused")).all()
    assert refused and refused[-1].summary["method"] == "oidc"


# --- refusals ---------------------------------------------------------------------------------


@pytest.mark.parametrize("roles", [None, [], ""], ids=["absent", "empty-list", "empty-string"])
def test_no_role_in_the_claims_is_forbidden(
    browser: TestClient, provider: Provider, session: Session, roles: Any
) -> None:
    claims = claims_for("sunqi")
    if roles is None:
        del claims["cityops_roles"]
    else:
        claims["cityops_roles"] = roles
    r = sso_login(browser, provider, "u-3001", claims)
    assert r.status_code == 403, r.text
    assert error_of(r)["code"] == "forbidden"
    assert session_cookie(r) is None
    assert SESSION_COOKIE not in r.headers.get("set-cookie", "")
    assert account_of(session, provider, "u-3001") is None


@pytest.mark.parametrize(
    "query", ["state=not-a-state&code=abc", "code=abc", "state=&code=abc"], ids=str
)
def test_unknown_state_is_refused(browser: TestClient, query: str) -> None:
    r = callback(browser, f"/auth/oidc/callback?{query}")
    assert r.status_code == 400, r.text
    error = error_of(r)
    assert error["code"] == "oidc_error"
    assert error["fields"][0]["field"] == "state"
    assert "start again" in error["message"]
    assert session_cookie(r) is None


def test_a_callback_cannot_be_replayed(
    browser: TestClient, provider: Provider, session: Session
) -> None:
    provider.set_user("u-3002", claims_for("zhouba"))
    path = callback_path(provider.authorize(start(browser), "u-3002"))
    assert callback(browser, path).status_code == 303
    sessions_before = session_count(session)

    again = callback(browser, path)
    assert again.status_code == 400, again.text
    assert error_of(again)["code"] == "oidc_error"
    assert session_cookie(again) is None
    assert session_count(session) == sessions_before
    assert len(provider.token_requests) == 1, "a used state never reaches the token endpoint"


def test_a_disabled_account_is_refused(
    browser: TestClient, provider: Provider, session: Session
) -> None:
    assert sso_login(browser, provider, "u-3003", claims_for("wujiu")).status_code == 303
    account = account_of(session, provider, "u-3003")
    assert account is not None
    account.active = False
    session.flush()

    r = sso_login(browser, provider, "u-3003", claims_for("wujiu"))
    assert r.status_code == 403, r.text
    assert error_of(r)["code"] == "forbidden"
    assert "disabled" in error_of(r)["message"]
    assert session_cookie(r) is None


def test_provider_refusal_is_reported(
    browser: TestClient, provider: Provider, session: Session
) -> None:
    state = query_of(start(browser))["state"]
    r = callback(browser, f"/auth/oidc/callback?state={state}&error=access_denied")
    assert r.status_code == 400, r.text
    assert "access_denied" in error_of(r)["message"]
    assert session_cookie(r) is None
    assert provider.token_requests == []


def test_a_forged_code_fails_the_token_exchange(browser: TestClient, provider: Provider) -> None:
    state = query_of(start(browser))["state"]
    r = callback(browser, f"/auth/oidc/callback?state={state}&code=forged")
    assert r.status_code == 400, r.text
    assert "token exchange failed" in error_of(r)["message"]
    assert session_cookie(r) is None


def test_a_nonce_mismatch_is_refused(
    browser: TestClient, provider: Provider, session: Session
) -> None:
    provider.set_user("u-3004", claims_for("zhengshi"))
    url = start(browser)
    # The provider echoes the nonce from the authorization request; CityOps now expects another,
    # as it would if an ID token from a different log-in were injected.
    pending = session.get(OidcLogin, query_of(url)["state"])
    assert pending is not None
    pending.nonce = "a-different-nonce-" + pending.nonce[:20]
    session.flush()

    r = callback(browser, callback_path(provider.authorize(url, "u-3004")))
    assert r.status_code == 400, r.text
    assert error_of(r)["code"] == "oidc_error"
    assert "invalid ID token" in error_of(r)["message"]
    assert session_cookie(r) is None
    assert account_of(session, provider, "u-3004") is None


def test_the_callback_only_completes_in_the_browser_that_started_it(
    browser: TestClient, sso_app: FastAPI, provider: Provider, session: Session
) -> None:
    provider.set_user("u-3005", claims_for("chenyi"))
    path = callback_path(provider.authorize(start(browser), "u-3005"))
    # The same callback URL opened elsewhere: a link planted by an attacker who signed in at the
    # provider as themselves (log-in CSRF), or a victim's leaked code replayed by an attacker.
    with TestClient(sso_app, raise_server_exceptions=False) as elsewhere:
        r = callback(elsewhere, path)
    assert r.status_code == 400, r.text
    assert error_of(r)["fields"][0]["field"] == "state"
    assert session_cookie(r) is None
    assert provider.token_requests == []
    assert account_of(session, provider, "u-3005") is None

    # Refusing the stranger did not spoil the log-in for the browser that started it.
    ok = callback(browser, path)
    assert ok.status_code == 303, ok.text
    assert session_cookie(ok)


def test_the_login_cookie_is_scoped_and_cleared(browser: TestClient, provider: Provider) -> None:
    provider.set_user("u-3006", claims_for("chener"))
    r = browser.get("/auth/oidc/login", follow_redirects=False)
    state = query_of(r.headers["location"])["state"]
    assert r.cookies.get(oidc.STATE_COOKIE) == state
    set_cookie = r.headers["set-cookie"].lower()
    for attribute in ("httponly", "samesite=lax", "path=/auth/oidc/", "max-age=600"):
        assert attribute in set_cookie
    done = callback(browser, callback_path(provider.authorize(r.headers["location"], "u-3006")))
    assert done.status_code == 303, done.text
    assert oidc.STATE_COOKIE not in browser.cookies


@pytest.mark.parametrize("failure", ["provider-error", "nonce"])
def test_a_failed_callback_uses_up_its_state(
    browser: TestClient, provider: Provider, session: Session, failure: str
) -> None:
    provider.set_user("u-3007", claims_for("chensan"))
    url = start(browser)
    state = query_of(url)["state"]
    if failure == "provider-error":
        first = callback(browser, f"/auth/oidc/callback?state={state}&error=access_denied")
    else:
        pending = session.get(OidcLogin, state)
        assert pending is not None
        pending.nonce = "not-the-nonce-that-was-sent"
        session.flush()
        first = callback(browser, callback_path(provider.authorize(url, "u-3007")))
    assert first.status_code == 400, first.text
    session.expire_all()
    assert session.get(OidcLogin, state) is None

    exchanges = len(provider.token_requests)
    second = callback(browser, callback_path(provider.authorize(url, "u-3007")))
    assert second.status_code == 400, second.text
    assert "start again" in error_of(second)["message"]
    assert session_cookie(second) is None
    assert len(provider.token_requests) == exchanges


def test_claims_that_fail_leave_no_half_made_account(
    browser: TestClient, provider: Provider, session: Session
) -> None:
    r = sso_login(browser, provider, "u-3008", claims_for("chensi", cityops_region="999999"))
    assert r.status_code == 422, r.text
    assert session_cookie(r) is None
    assert account_of(session, provider, "u-3008") is None
    assert session.scalar(select(Account).where(Account.username == "chensi")) is None


def test_rotated_provider_keys_are_fetched_again(
    browser: TestClient,
    sso_app: FastAPI,
    provider: Provider,
    signing_key: RSAKey,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # CityOps cached the provider's keys before the provider rotated them.
    stale = oidc.discover(provider.issuer) | {"jwks": KeySet([signing_key]).as_dict(private=False)}
    monkeypatch.setitem(oidc._discovery, provider.issuer, (time.monotonic(), stale))
    r = sso_login(browser, provider, "u-3009", claims_for("chenwu"))
    assert r.status_code == 303, r.text
    cookie = session_cookie(r)
    assert cookie
    assert me(sso_app, cookie)["account"]["username"] == "chenwu"


def test_a_local_account_is_never_taken_over_by_name(
    browser: TestClient, sso_app: FastAPI, client: TestClient, provider: Provider, session: Session
) -> None:
    admin_before = client.get("/api/v1/auth/me").json()
    assert admin_before["account"]["username"] == "demo-admin"

    r = sso_login(browser, provider, "u-4001", claims_for("Demo-Admin", name="冒名者"))
    assert r.status_code == 303, r.text
    cookie = session_cookie(r)
    assert cookie
    body = me(sso_app, cookie)
    assert body["account"]["id"] != admin_before["account"]["id"]
    assert body["account"]["username"].startswith("sso-")
    assert body["roles"] == ["dispatcher"]
    assert body["name"] == "冒名者"

    admin_after = client.get("/api/v1/auth/me").json()
    for key in ("name", "roles", "region_code"):
        assert admin_after[key] == admin_before[key]
    assert admin_after["account"] == admin_before["account"]

    # The next log-in by the same subject finds the same generated account.
    again = sso_login(browser, provider, "u-4001", claims_for("demo-admin", name="冒名者"))
    assert again.status_code == 303, again.text
    cookie2 = session_cookie(again)
    assert cookie2
    assert me(sso_app, cookie2)["account"]["username"] == body["account"]["username"]


def test_sso_is_off_without_an_issuer(anon: TestClient) -> None:
    assert anon.get("/auth/oidc/login", follow_redirects=False).status_code == 404
    assert anon.get("/auth/oidc/callback?state=x&code=y").status_code == 404


# --- ID token checks --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def signing_key() -> RSAKey:
    return RSAKey.generate_key(2048, parameters={"kid": "k1", "use": "sig"})


@pytest.fixture(scope="module")
def idp_settings() -> Settings:
    """Only the issuer and client id matter here: no database is touched."""
    return settings_for("sqlite://", oidc_issuer="https://idp.example", oidc_client_id="cityops")


def _meta(key: RSAKey) -> dict[str, Any]:
    return {"issuer": "https://idp.example", "jwks": KeySet([key]).as_dict(private=False)}


def _sign(key: RSAKey, **overrides: Any) -> str:
    now = int(time.time())
    claims: dict[str, Any] = {
        "iss": "https://idp.example",
        "aud": "cityops",
        "sub": "u-1",
        "iat": now,
        "exp": now + 300,
        "nonce": "n-1",
    }
    claims.update(overrides)
    claims = {k: v for k, v in claims.items() if v is not None}
    return jwt.encode({"alg": "RS256", "kid": key.kid}, claims, key)


def test_a_well_formed_id_token_is_accepted(signing_key: RSAKey, idp_settings: Settings) -> None:
    claims = oidc.verify_id_token(_sign(signing_key), _meta(signing_key), idp_settings, "n-1")
    assert claims["sub"] == "u-1"


@pytest.mark.parametrize(
    "overrides",
    [
        {"iss": "https://evil.example"},
        {"aud": "another-client"},
        {"exp": int(time.time()) - 3600},
        {"exp": None},
        {"nonce": "n-2"},
        {"nonce": None},
        {"sub": None},
    ],
    ids=["issuer", "audience", "expired", "no-exp", "nonce", "no-nonce", "no-sub"],
)
def test_id_token_claims_are_checked(
    signing_key: RSAKey, idp_settings: Settings, overrides: dict[str, Any]
) -> None:
    token = _sign(signing_key, **overrides)
    with pytest.raises(oidc.OidcError, match="invalid ID token"):
        oidc.verify_id_token(token, _meta(signing_key), idp_settings, "n-1")


def test_id_token_signed_by_another_key_is_refused(
    signing_key: RSAKey, idp_settings: Settings
) -> None:
    forger = RSAKey.generate_key(2048, parameters={"kid": "k1"})
    for token in (_sign(forger), "", "not.a.jwt"):
        with pytest.raises(oidc.OidcError, match="invalid ID token"):
            oidc.verify_id_token(token, _meta(signing_key), idp_settings, "n-1")
