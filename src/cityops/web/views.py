from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse
from fastapi.templating import Jinja2Templates

from cityops import __version__
from cityops.web.i18n import LANG_COOKIE, pick_language, translator

WEB_DIR = Path(__file__).parent
STATIC_DIR = WEB_DIR / "static"
VENDOR_DIR = STATIC_DIR / "vendor"
templates = Jinja2Templates(directory=WEB_DIR / "templates")

router = APIRouter(include_in_schema=False)


@router.get("/", response_class=HTMLResponse)
def index(request: Request) -> HTMLResponse:
    lang = pick_language(request)
    settings = request.app.state.settings
    response = templates.TemplateResponse(
        request,
        "index.html",
        {
            "t": translator(lang),
            "lang": lang,
            "district_code": settings.district_code,
            "version": __version__,
            "assets_ready": (VENDOR_DIR / "echarts.min.js").exists(),
        },
    )
    if request.query_params.get("lang") == lang:
        response.set_cookie(LANG_COOKIE, lang, max_age=365 * 86400, samesite="lax", httponly=True)
    return response
