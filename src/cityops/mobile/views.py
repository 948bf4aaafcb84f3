"""The pocket command room's pages (``/m/``, ``/m/tasks``, ``/m/report``, ``/m/alerts``), its web
app manifest and service worker (served from ``/m/`` so that its scope is ``/m/``), and two small
JSON helpers for the page script: the session (fresh CSRF token before a sync) and the cases
waiting for the signed-in person, with the actions they may take now."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from datetime import datetime
from functools import lru_cache
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from sqlalchemy import case, or_, select
from sqlalchemy.orm import Session

from cityops import __version__
from cityops.auth.deps import Require, current_principal
from cityops.auth.permissions import Permission as P
from cityops.auth.principal import Principal
from cityops.db import utcnow
from cityops.deps import DbSession
from cityops.events import lifecycle, queries
from cityops.events.lifecycle import Action
from cityops.events.models import Case, Level, State
from cityops.geo.models import Region
from cityops.org.models import DutyShift, Person
from cityops.org.roles import Role
from cityops.web.i18n import pick_language, translator
from cityops.web.i18n_mobile import MOBILE_STRINGS
from cityops.web.views import STATIC_DIR, MaybePrincipal, render, to_login

router = APIRouter(include_in_schema=False)

PREFIX = "m_"  # the pocket command room's keys in the UI strings
VIEWS = ("home", "tasks", "report", "alerts")
ASSETS_DIR = STATIC_DIR / "m"
# The app shell the service worker keeps for an offline start (pages are cached as visited).
SHELL_ASSETS = ("m/app.css", "m/queue.js", "m/app.js", "m/icon.svg", "m/icon-192.png")
# What a phone may do to a case from the task list (the rest needs the workbench).
MOBILE_ACTIONS = (
    Action.accept,
    Action.report_done,
    Action.return_,
    Action.verify_ok,
    Action.verify_fail,
    Action.dispatch,
)
CASE_LIMIT = 50
NO_STORE = {"Cache-Control": "no-store"}
Reader = Annotated[Principal, Depends(Require(P.cases_read))]
SignedIn = Annotated[Principal, Depends(current_principal)]


def asset_version() -> str:
    """Changes whenever a file of the app shell changes: the asset URLs and the service worker's
    cache name carry it, so a phone never mixes old and new files."""
    stamp = [__version__]
    for path in sorted(ASSETS_DIR.iterdir()):
        if path.is_file():
            st = path.stat()
            stamp.append(f"{path.name}:{st.st_size}:{st.st_mtime_ns}")
    return _digest("|".join(stamp))


@lru_cache(maxsize=8)
def _digest(stamp: str) -> str:
    return hashlib.sha256(stamp.encode()).hexdigest()[:12]


def translate(lang: str) -> Callable[[str], str]:
    """The shared translator, with this app's strings first (they are merged into the shared
    table too, but the page must not depend on the order modules were imported in)."""
    shared = translator(lang)

    def t(key: str) -> str:
        entry = MOBILE_STRINGS.get(key)
        return entry.get(lang, entry["zh"]) if entry else shared(key)

    return t


def strings(lang: str) -> dict[str, str]:
    """The page script's strings, without their prefix."""
    t = translate(lang)
    return {key[len(PREFIX) :]: t(key) for key in MOBILE_STRINGS if key.startswith(PREFIX)}


def home_grid(session: Session, principal: Principal, now: datetime) -> dict[str, Any] | None:
    """The grid the person answers for now (a covering shift first, then the standing duty), or
    the grid they belong to: the report form's "use my grid centre"."""
    if principal.person_id is None:
        return None
    columns = (Region.code, Region.name, Region.center_lat, Region.center_lon)
    row = session.execute(
        select(*columns)
        .join(DutyShift, DutyShift.grid_id == Region.id)
        .where(
            DutyShift.person_id == principal.person_id,
            DutyShift.starts_at <= now,
            or_(DutyShift.ends_at.is_(None), DutyShift.ends_at > now),
        )
        .order_by(case((DutyShift.kind == "shift", 0), else_=1), DutyShift.starts_at.desc())
        .limit(1)
    ).first()
    if row is None:
        row = session.execute(
            select(*columns)
            .join(Person, Person.region_id == Region.id)
            .where(Person.id == principal.person_id, Region.level == "grid")
        ).first()
    if row is None:
        return None
    code, name, lat, lon = row
    return {"code": code, "name": name, "lat": lat, "lon": lon}


def _can(principal: Principal) -> dict[str, bool]:
    return {
        "report": principal.can(P.cases_report),
        "cases": principal.can(P.cases_read),
        "evacuation": principal.can(P.evacuation_update) and principal.person_id is not None,
        "warnings": principal.can(P.warnings_read),
        "decide": principal.can(P.warnings_decide),
        "alarms": principal.can(P.alarms_read),
        "ack": principal.can(P.alarms_manage),
        "dispatch": principal.can(P.cases_dispatch),
    }


def _page(request: Request, principal: Principal | None, session: Session, view: str) -> Response:
    if principal is None:
        return to_login(request)
    lang = pick_language(request)
    version = asset_version()
    config = {
        "view": view,
        "lang": lang,
        "zone": request.app.state.settings.timezone,
        "owner": f"{principal.kind}:{principal.id}",
        "name": principal.name,
        "grid": home_grid(session, principal, utcnow()),
        "can": _can(principal),
        "version": version,
        "strings": strings(lang),
    }
    response = render(
        request,
        "m/app.html",
        t=translate(lang),
        principal=principal,
        view=view,
        views=VIEWS,
        csrf_token=getattr(request.state, "csrf_token", ""),
        asset_version=version,
        config=config,
    )
    # Personal: never in a shared cache; the service worker keeps its own copy for offline use.
    response.headers["Cache-Control"] = "private, no-cache"
    return response


@router.get("/m")
def bare(request: Request) -> RedirectResponse:
    """The app lives under ``/m/`` (the service worker's scope)."""
    query = f"?{request.url.query}" if request.url.query else ""
    return RedirectResponse(f"/m/{query}", status_code=307)


@router.get("/m/", response_class=HTMLResponse)
def home(request: Request, principal: MaybePrincipal, session: DbSession) -> Response:
    return _page(request, principal, session, "home")


@router.get("/m/tasks", response_class=HTMLResponse)
def tasks(request: Request, principal: MaybePrincipal, session: DbSession) -> Response:
    return _page(request, principal, session, "tasks")


@router.get("/m/report", response_class=HTMLResponse)
def report(request: Request, principal: MaybePrincipal, session: DbSession) -> Response:
    return _page(request, principal, session, "report")


@router.get("/m/alerts", response_class=HTMLResponse)
def alerts(request: Request, principal: MaybePrincipal, session: DbSession) -> Response:
    return _page(request, principal, session, "alerts")


@router.get("/m/manifest.webmanifest")
def manifest(request: Request) -> Response:
    lang = pick_language(request)
    t = translate(lang)
    version = asset_version()
    body = {
        "name": t("m_app_name"),
        "short_name": t("m_app_short"),
        "description": t("m_app_description"),
        "lang": "zh-CN" if lang == "zh" else "en",
        "id": "/m/",
        "start_url": "/m/",
        "scope": "/m/",
        "display": "standalone",
        "orientation": "portrait",
        "background_color": "#0b1426",
        "theme_color": "#0e2348",
        "icons": [
            {
                "src": f"/static/m/icon-192.png?v={version}",
                "sizes": "192x192",
                "type": "image/png",
                "purpose": "any maskable",
            },
            {
                "src": f"/static/m/icon-512.png?v={version}",
                "sizes": "512x512",
                "type": "image/png",
                "purpose": "any maskable",
            },
            {"src": f"/static/m/icon.svg?v={version}", "sizes": "any", "type": "image/svg+xml"},
        ],
    }
    return Response(
        json.dumps(body, ensure_ascii=False),
        media_type="application/manifest+json",
        headers={"Cache-Control": "no-cache"},
    )


@router.get("/m/sw.js")
def service_worker() -> Response:
    """The service worker, with this build's cache name and app-shell list filled in; always
    revalidated so that a new version reaches the phones."""
    version = asset_version()
    shell = [f"/static/{path}?v={version}" for path in SHELL_ASSETS]
    script = (ASSETS_DIR / "sw.js").read_text(encoding="utf-8")
    script = script.replace('"__VERSION__"', json.dumps(version)).replace(
        '["__SHELL__"]', json.dumps(shell)
    )
    return Response(
        script,
        media_type="text/javascript",
        headers={"Cache-Control": "no-cache", "X-Content-Type-Options": "nosniff"},
    )


@router.get("/m/api/session")
def session_info(request: Request, principal: SignedIn) -> JSONResponse:
    """Who is signed in and the CSRF token of this session: the page asks before it sends its
    queue, so a page opened from the offline cache never sends a stale token."""
    return JSONResponse(
        {
            "owner": f"{principal.kind}:{principal.id}",
            "name": principal.name,
            "csrf_token": getattr(request.state, "csrf_token", ""),
        },
        headers=NO_STORE,
    )


@router.get("/m/api/cases")
def my_cases(principal: Reader, session: DbSession) -> JSONResponse:
    """Cases waiting for the caller — to accept or report on (their unit's), to verify (in their
    grid, for a grid worker) or to dispatch (at their level) — with the actions allowed now."""
    grid = None
    if Role.grid_worker.value in principal.roles:
        found = home_grid(session, principal, utcnow())
        grid = found["code"] if found else None
    candidates: list[Case] = []
    if principal.unit_id is not None and (
        principal.can(P.cases_handle) or principal.can(P.cases_dispatch)
    ):
        query = queries.filtered(
            principal, queries.Filters(state=[State.dispatched, State.handling])
        ).where(Case.current_unit_id == principal.unit_id)
        candidates += session.scalars(query.order_by(Case.id.desc()).limit(CASE_LIMIT))
    if principal.can(P.cases_verify):
        query = queries.filtered(principal, queries.Filters(state=[State.handled], region=grid))
        candidates += session.scalars(query.order_by(Case.id.desc()).limit(CASE_LIMIT))
    level = {6: Level.district, 9: Level.town}.get(len(principal.region_code))
    if principal.can(P.cases_dispatch) and level is not None:
        query = queries.filtered(
            principal, queries.Filters(state=[State.registered], level=level.value)
        )
        candidates += session.scalars(query.order_by(Case.id.desc()).limit(CASE_LIMIT))
    seen: set[int] = set()
    rows: list[tuple[Case, list[str]]] = []
    for c in candidates:
        if c.id in seen:
            continue
        seen.add(c.id)
        allowed = [a.value for a in lifecycle.allowed_actions(c, principal) if a in MOBILE_ACTIONS]
        if allowed:
            rows.append((c, allowed))
    rows.sort(key=lambda r: (not r[0].overdue, r[0].urgency != "urgent", _due(r[0]), r[0].id))
    rows = rows[:CASE_LIMIT]
    cats, units = queries.categories_and_units(session, [c for c, _ in rows])
    items = [
        {
            "code": c.code,
            "state": c.state,
            "level": c.level,
            "category": cats[c.category_id].code if c.category_id else None,
            "category_name": cats[c.category_id].name if c.category_id else None,
            "description": c.description,
            "address": c.address,
            "region_code": c.region_code,
            "urgency": c.urgency,
            "overdue": c.overdue,
            "deadline_at": c.deadline_at.isoformat() if c.deadline_at else None,
            "unit_name": units[c.current_unit_id].name if c.current_unit_id else None,
            "version": c.version,
            "actions": allowed,
        }
        for c, allowed in rows
    ]
    return JSONResponse({"items": items}, headers=NO_STORE)


def _due(c: Case) -> str:
    return c.deadline_at.isoformat() if c.deadline_at else "9999"
