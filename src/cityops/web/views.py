from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any
from urllib.parse import quote

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates

from cityops import __version__
from cityops.auth import accounts, sessions
from cityops.auth.cookies import open_session
from cityops.auth.deps import SESSION_COOKIE, client_ip, optional_principal
from cityops.auth.principal import Principal
from cityops.auth.tokens import new_token, same
from cityops.db import utcnow
from cityops.deps import DbSession
from cityops.errors import TooManyAttempts
from cityops.web.i18n import LANG_COOKIE, pick_language, translator

WEB_DIR = Path(__file__).parent
STATIC_DIR = WEB_DIR / "static"
VENDOR_DIR = STATIC_DIR / "vendor"
LOGIN_CSRF_COOKIE = "cityops_login_csrf"
templates = Jinja2Templates(directory=WEB_DIR / "templates")

router = APIRouter(include_in_schema=False)
MaybePrincipal = Annotated[Principal | None, Depends(optional_principal)]


def render(request: Request, template: str, status_code: int = 200, **context: Any) -> HTMLResponse:
    lang = pick_language(request)
    response = templates.TemplateResponse(
        request,
        template,
        {"t": translator(lang), "lang": lang, "version": __version__, **context},
        status_code=status_code,
    )
    if request.query_params.get("lang") == lang:
        response.set_cookie(LANG_COOKIE, lang, max_age=365 * 86400, samesite="lax", httponly=True)
    return response


def safe_next(target: str | None) -> str:
    """Only same-site paths: an open redirect would hand our log-in page to phishers."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\\\" in target:
        return "/"
    return target


def to_login(request: Request) -> RedirectResponse:
    target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    return RedirectResponse(f"/login?next={quote(target)}", status_code=303)


@router.get("/", response_class=HTMLResponse)
def index(request: Request, principal: MaybePrincipal) -> Response:
    if principal is None:
        return to_login(request)
    return render(
        request,
        "index.html",
        principal=principal,
        csrf_token=getattr(request.state, "csrf_token", ""),
        district_code=request.app.state.settings.district_code,
        assets_ready=(VENDOR_DIR / "echarts.min.js").exists(),
    )


def _login_page(
    request: Request, status_code: int = 200, error: str = "", username: str = ""
) -> HTMLResponse:
    settings = request.app.state.settings
    token = request.cookies.get(LOGIN_CSRF_COOKIE) or new_token(24)
    response = render(
        request,
        "login.html",
        status_code=status_code,
        login_csrf=token,
        next_url=safe_next(request.query_params.get("next")),
        error=error,
        username=username,
        demo=settings.demo,
        demo_accounts=_demo_accounts() if settings.demo else [],
        oidc=bool(settings.oidc_issuer),
    )
    response.set_cookie(
        LOGIN_CSRF_COOKIE,
        token,
        httponly=True,
        samesite="strict",
        secure=settings.cookie_secure,
        path="/login",
    )
    return response


def _demo_accounts() -> list[tuple[str, str]]:
    from cityops.demo.accounts import DEMO_ACCOUNTS

    return [(d.username, d.label) for d in DEMO_ACCOUNTS]


@router.get("/login", response_class=HTMLResponse)
def login_page(request: Request, principal: MaybePrincipal) -> Response:
    if principal is not None:
        return RedirectResponse(safe_next(request.query_params.get("next")), status_code=303)
    return _login_page(request)


@router.post("/login", response_class=HTMLResponse)
def login_submit(
    request: Request,
    session: DbSession,
    username: Annotated[str, Form(max_length=100)] = "",
    password: Annotated[str, Form(max_length=256)] = "",
    csrf_token: Annotated[str, Form(max_length=100)] = "",
    next: Annotated[str, Form(max_length=500)] = "/",
) -> Response:
    t = translator(pick_language(request))
    cookie = request.cookies.get(LOGIN_CSRF_COOKIE, "")
    if not cookie or not csrf_token or not same(cookie, csrf_token):
        return _login_page(request, 403, t("login_expired"), username)
    if not username or not password:
        return _login_page(request, 422, t("login_missing"), username)
    settings, now = request.app.state.settings, utcnow()
    try:
        result = accounts.password_login(
            session, username, password, client_ip(request), settings, now
        )
    except TooManyAttempts as exc:
        page = _login_page(
            request, 429, t("login_throttled").format(seconds=exc.extra["retry_after"]), username
        )
        page.headers.update(exc.headers)
        return page
    if result.account is None:
        key = "login_disabled" if result.error == "disabled" else "login_failed"
        return _login_page(request, 401, t(key), username)
    response = RedirectResponse(safe_next(next), status_code=303)
    open_session(session, result.account, request, response, now)
    response.delete_cookie(LOGIN_CSRF_COOKIE, path="/login")
    return response


@router.post("/logout")
async def logout_form(request: Request, principal: MaybePrincipal, session: DbSession) -> Response:
    from cityops.auth.deps import check_csrf

    if principal is not None and principal.via == "session":
        await check_csrf(request, getattr(request.state, "csrf_token", ""))
        sessions.end_session(session, request.cookies.get(SESSION_COOKIE, ""), utcnow())
    response = RedirectResponse("/login", status_code=303)
    response.delete_cookie(SESSION_COOKIE, path="/")
    return response
