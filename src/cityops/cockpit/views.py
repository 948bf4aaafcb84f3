"""The cockpit page (``/cockpit?region=CODE``): server-rendered shell; the figures, charts and
map come from the cockpit API and the live feed."""

from __future__ import annotations

import re
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response

from cityops.cockpit import service
from cityops.cockpit.layers import Layer
from cityops.deps import DbSession
from cityops.errors import NotFound
from cityops.live import service as live
from cityops.web.i18n import STRINGS, pick_language, translator
from cityops.web.views import VENDOR_DIR, MaybePrincipal, render, to_login

router = APIRouter(include_in_schema=False)
PREFIX = "ck_"  # the cockpit's keys in the UI strings
# Topics the page follows ("alarm" is the alarm domain's topic; "alarms" in case it is renamed).
TOPICS = ("cases", "alarms", "alarm", "warnings", "evacuations", "risk_points")


SHARED = ("level_district", "level_town", "level_village", "level_grid", "synthetic_note")


def strings(lang: str) -> dict[str, str]:
    """The page script's strings: the cockpit's own (without their prefix) and a few shared."""
    t = translator(lang)
    own = {key[len(PREFIX) :]: t(key) for key in STRINGS if key.startswith(PREFIX)}
    return own | {key: t(key) for key in SHARED}


@router.get("/cockpit", response_class=HTMLResponse)
def cockpit(request: Request, principal: MaybePrincipal, session: DbSession) -> Response:
    if principal is None:
        return to_login(request)
    lang = pick_language(request)
    t = translator(lang)
    common: dict[str, Any] = {
        "principal": principal,
        "csrf_token": getattr(request.state, "csrf_token", ""),
        "assets_ready": (VENDOR_DIR / "echarts.min.js").exists(),
    }
    if not all(principal.can(p) for p in service.READ_PERMISSIONS):
        return render(request, "cockpit.html", 403, error=t("ck_forbidden"), **common)
    asked = request.query_params.get("region") or None
    settings = request.app.state.settings
    try:
        if asked is not None and not re.fullmatch(service.REGION_PATTERN, asked):
            raise NotFound("bad region code", field="region")
        scope = service.scope_for(session, principal, asked, settings.district_code)
    except NotFound:
        return render(request, "cockpit.html", 404, error=t("ck_region_missing"), **common)
    config = {
        "region": scope.code,
        "home": service.scope_for(session, principal, None, settings.district_code).code,
        "lang": lang,
        "zone": settings.timezone,
        "feed_after": live.latest_id(session),
        "topics": list(TOPICS),
        "layers": [layer.value for layer in Layer],
        "names": service.town_names(session),
        "strings": strings(lang),
    }
    return render(request, "cockpit.html", config=config, region_name=scope.region.name, **common)
