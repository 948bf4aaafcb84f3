"""Application wiring: settings, database, routers, error handlers, pages."""

from __future__ import annotations

import logging
from contextlib import AbstractAsyncContextManager
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.staticfiles import StaticFiles
from sqlalchemy import Engine, text
from sqlalchemy.exc import DataError, IntegrityError, OperationalError

from cityops import __version__
from cityops.config import Settings, get_settings
from cityops.db import engine_from_settings, session_factory
from cityops.errors import CityOpsError

log = logging.getLogger("cityops")

# The router registry: each domain contributes its routers here, nowhere else.
ROUTER_MODULES = [
    "cityops.auth.api",
    "cityops.auth.oidc",
    "cityops.geo.api",
    "cityops.org.api",
    "cityops.events.api",
    "cityops.events.evaluation_api",
    "cityops.notify.api",
    "cityops.web.views",
    "cityops.events.attachments_api",
    "cityops.open311.api",
    "cityops.telemetry.api",
    "cityops.alarms.api",
    "cityops.live.api",
    "cityops.warning.api",
    "cityops.mobile.views",
    "cityops.cockpit.api",
    "cityops.workbench.views",
    "cityops.workbench.case_views",
    "cityops.workbench.evaluation_views",
    "cityops.workbench.alarm_views",
    "cityops.workbench.device_views",
    "cityops.workbench.rule_views",
    "cityops.workbench.warning_views",
]


def create_app(settings: Settings | None = None, engine: Engine | None = None) -> FastAPI:
    settings = settings or get_settings()
    engine = engine or engine_from_settings(settings)
    app = FastAPI(
        title="CityOps 城市运行和治理中心",
        version=__version__,
        description="开州区数字化城市运行和治理中心 API — city operations and governance center",
        lifespan=_lifespan,
    )
    from cityops.auth import audit

    audit.install()
    from cityops import events

    events.configure(settings)
    app.state.settings = settings
    app.state.engine = engine
    app.state.session_factory = session_factory(engine)

    import importlib

    for module_name in ROUTER_MODULES:
        app.include_router(importlib.import_module(module_name).router)

    from cityops.web.views import STATIC_DIR

    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
    _install_error_handlers(app)
    _install_health(app)
    return app


def _lifespan(app: FastAPI) -> AbstractAsyncContextManager[None]:
    """Start-up and shutdown: live streams end when the server stops; the PostgreSQL listener
    (started with the first stream) stops with it."""
    from cityops.live import bus

    return bus.lifespan(app)


def _error(
    code: str,
    message: str,
    status: int,
    fields: list[dict[str, str]] | None = None,
    headers: dict[str, str] | None = None,
) -> JSONResponse:
    """The one error body every handler renders: {"error": {code, message[, fields]}}."""
    error: dict[str, Any] = {"code": code, "message": message}
    if fields is not None:
        error["fields"] = fields
    return JSONResponse({"error": error}, status_code=status, headers=headers)


def _install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(CityOpsError)
    async def domain_error(_request: Request, exc: CityOpsError) -> JSONResponse:
        return JSONResponse(exc.to_dict(), status_code=exc.status_code, headers=exc.headers)

    @app.exception_handler(RequestValidationError)
    async def validation_error(_request: Request, exc: RequestValidationError) -> JSONResponse:
        fields = []
        for err in exc.errors():
            loc = [str(p) for p in err.get("loc", ()) if p not in ("query", "path", "body")]
            fields.append(
                {"field": ".".join(loc) or "request", "message": err.get("msg", "invalid")}
            )
        names = ", ".join(f["field"] for f in fields)
        return _error("invalid_input", f"输入有误 / invalid input: {names}", 422, fields)

    @app.exception_handler(DataError)
    async def bad_value(_request: Request, exc: DataError) -> JSONResponse:
        # A value the database refuses (a NUL byte in text on PostgreSQL, an out-of-range
        # number): the caller's input, not our fault. The request's transaction rolled back.
        log.info("database refused a value: %s", exc.orig)
        return _error(
            "invalid_input",
            "输入包含无效字符或数值 / invalid characters or values in the input",
            422,
            [{"field": "request", "message": "invalid value"}],
        )

    @app.exception_handler(IntegrityError)
    async def conflict(_request: Request, exc: IntegrityError) -> JSONResponse:
        log.info("integrity conflict: %s", exc.orig)
        return _error(
            "conflict",
            "与现有数据冲突，请刷新后重试 / conflicts with existing data; reload and retry",
            409,
        )

    @app.exception_handler(OperationalError)
    async def busy(_request: Request, exc: OperationalError) -> JSONResponse:
        # The database is busy or away for a moment (SQLite's write lock held by another
        # writer, a PostgreSQL failover): nothing was written; the client may retry.
        log.warning("database unavailable: %s", exc.orig)
        return _error(
            "busy",
            "系统繁忙，请稍后重试 / the database is busy; retry shortly",
            503,
            headers={"Retry-After": "1"},
        )

    @app.exception_handler(Exception)
    async def unexpected(_request: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error", exc_info=exc)
        return _error("internal", "服务器内部错误 / internal error", 500)


def _install_health(app: FastAPI) -> None:
    @app.get("/healthz", tags=["health"])
    def healthz() -> dict[str, str]:
        return {"status": "ok", "version": __version__}

    @app.get("/readyz", tags=["health"])
    def readyz(request: Request) -> JSONResponse:
        try:
            with request.app.state.engine.connect() as conn:
                conn.execute(text("SELECT 1"))
        except Exception as exc:  # any driver error means "not ready", never a 500
            log.warning("readiness check failed: %s", exc)
            return JSONResponse(
                {"status": "unavailable", "database": "unreachable"}, status_code=503
            )
        return JSONResponse({"status": "ok", "database": "ok"})
