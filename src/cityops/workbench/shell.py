"""What every workbench page shares: who may open it, the navigation with queue sizes, readable
errors, dates in the district's time zone and the form's CSRF check."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, TypeVar
from zoneinfo import ZoneInfo

from fastapi import Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from pydantic import BaseModel, ValidationError
from sqlalchemy import select
from sqlalchemy.orm import Session
from starlette.datastructures import FormData

from cityops.auth.deps import CSRF_FIELD
from cityops.auth.permissions import Permission as P
from cityops.auth.principal import Principal
from cityops.auth.tokens import same
from cityops.db import utcnow
from cityops.errors import CityOpsError, InvalidInput, NotFound
from cityops.geo.models import Region
from cityops.web.i18n import pick_language, translator
from cityops.web.views import render, to_login
from cityops.workbench import queues

M = TypeVar("M", bound=BaseModel)
T = TypeVar("T")
STOPPED = frozenset({"closed", "rejected", "merged", "voided", "parked"})
REGION_FILTER = r"^(\d{6}(\d{3}){0,3})?$"  # a list's area filter: a region code, or empty


def pages_of(total: int, size: int) -> int:
    """How many pages a list of ``total`` rows takes (one, when empty)."""
    return max(1, -(-total // size))


@dataclass(frozen=True)
class NavItem:
    key: str
    href: str
    label: str
    count: int | None = None


def nav(principal: Principal, sizes: dict[str, int], t: Any) -> list[NavItem]:
    items = [
        NavItem(q.key, f"/workbench?queue={q.key}", t(f"wb_q_{q.key}"), sizes.get(q.key))
        for q in queues.mine(principal)
    ]
    if "alarms" in sizes:
        items.append(
            NavItem("alarms", "/workbench/alarms?acked=false", t("wb_q_alarms"), sizes["alarms"])
        )
    if "warnings" in sizes:
        items.append(
            NavItem(
                "warnings",
                "/workbench/warnings?state=proposed",
                t("wb_q_warnings"),
                sizes["warnings"],
            )
        )
    return items


def links(principal: Principal, t: Any) -> list[NavItem]:
    """The other pages, each only for those who may use it."""
    items = [NavItem("all", "/workbench?queue=all", t("wb_nav_all"))]
    if principal.can(P.cases_register) or principal.can(P.cases_report):
        items.append(NavItem("new", "/workbench/new", t("wb_nav_new")))
    if principal.can(P.alarms_read):
        items.append(NavItem("alarm-list", "/workbench/alarms", t("wb_nav_alarms")))
    if principal.can(P.devices_read):
        items.append(NavItem("device-list", "/workbench/devices", t("wb_nav_devices")))
    if principal.can(P.warnings_read):
        items.append(NavItem("warning-list", "/workbench/warnings", t("wb_nav_warnings")))
    if principal.can(P.evaluation_read):
        items.append(NavItem("evaluation", "/workbench/evaluation", t("wb_nav_evaluation")))
    items.append(NavItem("cockpit", "/cockpit", t("wb_nav_cockpit")))
    items.append(NavItem("mobile", "/m/", t("wb_nav_mobile")))
    return items


class Clock:
    """Dates as the district reads them, and deadlines as time left or time late."""

    def __init__(self, zone: str, lang: str, now: datetime) -> None:
        self.zone = ZoneInfo(zone)
        self.lang = lang
        self.now = now

    def when(self, at: datetime | None, with_year: bool = False) -> str:
        if at is None:
            return "–"
        local = at.astimezone(self.zone)
        return local.strftime("%Y-%m-%d %H:%M" if with_year else "%m-%d %H:%M")

    def span(self, delta: timedelta) -> str:
        minutes = int(abs(delta.total_seconds()) // 60)
        days, rest = divmod(minutes, 1440)
        hours, mins = divmod(rest, 60)
        zh = self.lang == "zh"
        if days:
            return f"{days}天{hours}小时" if zh else f"{days} d {hours} h"
        if hours:
            return f"{hours}小时{mins}分" if zh else f"{hours} h {mins} min"
        return f"{mins}分钟" if zh else f"{mins} min"

    def left(self, deadline: datetime | None, state: str = "") -> tuple[str, str]:
        """(text, tone) for a running deadline: tone is ok, soon (< 4 h) or late; nothing once
        the case is closed, parked or out of the loop."""
        if deadline is None or state in STOPPED:
            return "–", "none"
        t = translator(self.lang)
        delta = deadline - self.now
        if delta.total_seconds() < 0:
            return t("wb_late").format(t=self.span(delta)), "late"
        tone = "soon" if delta < timedelta(hours=4) else "ok"
        return t("wb_left").format(t=self.span(delta)), tone


def labels(keys: dict[str, str], lang: str) -> dict[str, str]:
    """A form's field names as the reader calls them (``keys``: field → string key)."""
    t = translator(lang)
    return {field: t(key) for field, key in keys.items()}


def text(form: FormData, key: str) -> str:
    return str(form.get(key, "")).strip()


def localized(message: str, lang: str) -> str:
    """Our errors read "中文 / English": show the reader's half."""
    if " / " not in message:
        return message
    zh, en = message.split(" / ", 1)
    return zh if lang == "zh" else en


def validated(model: type[M], data: dict[str, Any]) -> M:
    """A form checked by the API's own schema; the first fault becomes a 422 naming its field."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        field = str(first["loc"][0]) if first["loc"] else None
        raise InvalidInput(f"填写有误：{first['msg']} / {first['msg']}", field=field) from None


@dataclass
class Problem:
    """A failed action, as the page shows it: what happened and what to do."""

    status: int
    message: str
    hint: str
    field: str | None = None


def problem(exc: CityOpsError, lang: str, field_labels: dict[str, str] | None = None) -> Problem:
    t = translator(lang)
    hint = ""
    if exc.status_code == 409:
        hint = t("wb_error_conflict")
    elif exc.status_code == 403:
        hint = t("wb_error_csrf") if exc.field == CSRF_FIELD else t("wb_error_forbidden")
    elif exc.field:
        label = (field_labels or {}).get(exc.field, exc.field)
        hint = t("wb_error_field").format(field=label)
    return Problem(exc.status_code, localized(exc.message, lang), hint, exc.field)


def page(
    request: Request,
    session: Session,
    principal: Principal,
    template: str,
    *,
    active: str = "",
    status_code: int = 200,
    sizes: dict[str, int] | None = None,
    **context: Any,
) -> HTMLResponse:
    lang = pick_language(request)
    t = translator(lang)
    now = utcnow()
    if sizes is None:
        sizes = queues.counts(session, principal, now)
    response = render(
        request,
        template,
        status_code=status_code,
        principal=principal,
        csrf_token=getattr(request.state, "csrf_token", ""),
        nav=nav(principal, sizes, t),
        links=links(principal, t),
        active=active,
        clock=Clock(request.app.state.settings.timezone, lang, now),
        **context,
    )
    response.headers["Cache-Control"] = "private, no-store"
    return response


def refuse(
    request: Request, session: Session, principal: Principal, message: str, status_code: int = 403
) -> HTMLResponse:
    return page(
        request,
        session,
        principal,
        "wb/error.html",
        status_code=status_code,
        message=message,
    )


def gate(request: Request, principal: Principal | None) -> Response | None:
    """None when someone is signed in; else the way to the log-in page and back here."""
    if principal is None:
        return to_login(request)
    return None


def subject(
    request: Request,
    session: Session,
    principal: Principal | None,
    need: P,
    get: Callable[[Principal], T],
    missing: str,
    page: str | None = None,
) -> tuple[Principal, T] | Response:
    """What a page (or a form posted from ``page``) is about, with who is asking; or the answer
    when there is none to show: the log-in (and back), 403 without ``need``, 404 when ``get``
    finds nothing the person may see (``missing``: the message's key)."""
    if principal is None:
        return (
            RedirectResponse(f"/login?next={page}", status_code=303) if page else to_login(request)
        )
    t = translator(pick_language(request))
    if lacks(principal, need):
        return refuse(request, session, principal, t("wb_error_forbidden"))
    try:
        return principal, get(principal)
    except NotFound:
        return refuse(request, session, principal, t(missing), 404)


def admit(
    request: Request, session: Session, principal: Principal | None, need: P
) -> Principal | Response:
    """Who a page is for, or the answer when it is not: the log-in (and back) when signed out,
    403 without ``need``."""
    if (to := gate(request, principal)) is not None:
        return to
    assert principal is not None
    if lacks(principal, need):
        t = translator(pick_language(request))
        return refuse(request, session, principal, t("wb_error_forbidden"))
    return principal


def region_names(session: Session, codes: set[str]) -> dict[str, str]:
    """Region code → name, for the codes a list shows."""
    if not codes:
        return {}
    return dict(
        session.execute(select(Region.code, Region.name).where(Region.code.in_(codes))).all()
    )


def region_path(session: Session, code: str | None) -> list[Region]:
    """The district, town, village and grid a region code lies in (as far as it goes)."""
    if not code:
        return []
    prefixes = [code[:n] for n in (6, 9, 12, 15) if len(code) >= n]
    found = {r.code: r for r in session.scalars(select(Region).where(Region.code.in_(prefixes)))}
    return [found[p] for p in prefixes if p in found]


def lacks(principal: Principal, *permissions: P) -> bool:
    return principal.kind != "person" or not all(principal.can(p) for p in permissions)


async def submit(
    request: Request,
    session: Session,
    target: Any,
    show: Callable[..., Response],
    run: Callable[[FormData], object],
    *,
    action: str,
    done: str,
    labels: dict[str, str],
    refused: tuple[str, str] | None = None,
    lists: tuple[str, ...] = (),
) -> Response:
    """One action sent from its form. Done: back to ``done`` (post/redirect/get). Not done: the
    page again (``show``) with why and what to do, the filled form kept, and nothing written —
    the action runs in a savepoint. ``refused``: the person may read but not act (why, hint).
    ``run`` may return where to go instead of ``done`` (a page made by the action)."""
    lang = pick_language(request)
    t = translator(lang)
    form = await request.form()
    kept: dict[str, Any] = {
        k: form.getlist(k) if k in lists else str(v) for k, v in form.items() if k != CSRF_FIELD
    }
    kept["action"] = action
    if not await csrf_ok(request):
        return show(error=Problem(403, t("wb_error_csrf"), ""), form=kept, status_code=403)
    if refused is not None:
        return show(error=Problem(403, *refused), form={}, status_code=403)
    try:
        with session.begin_nested():
            went = run(form)
    except CityOpsError as exc:
        session.refresh(target)
        stale = exc.status_code == 409  # the page shows the new state: the old form is moot
        return show(
            error=problem(exc, lang, labels),
            form={} if stale else kept,
            status_code=exc.status_code,
        )
    return RedirectResponse(went if isinstance(went, str) else done, status_code=303)


async def csrf_ok(request: Request) -> bool:
    """Forms carry the session's CSRF token (a bearer token needs none: it is not ambient)."""
    principal = getattr(request.state, "principal", None)
    if principal is None or principal.via != "session":
        return True
    expected = getattr(request.state, "csrf_token", "")
    form = await request.form()
    presented = str(form.get(CSRF_FIELD, "")) or request.headers.get("x-csrf-token", "")
    return bool(expected and presented and same(presented, expected))
