"""Open311 GeoReport v2 at ``/open311/v2/`` (http://wiki.open311.org/GeoReport_v2).

Reads are public, as in every GeoReport deployment; ``POST requests`` is authenticated by the
``api_key`` form field the specification prescribes (an API key with the ``open311:post`` scope),
so these routes carry no bearer-token guard. Every response, errors included, is a GeoReport
document in the format the path's suffix names (``.json`` or ``.xml``).
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query, Request, Response
from fastapi.routing import APIRoute

from cityops.auth.deps import client_ip
from cityops.db import utcnow
from cityops.deps import DbSession
from cityops.errors import InvalidInput, NotFound
from cityops.open311 import formats, service
from cityops.open311.schemas import (
    GeoReportError,
    PostedRequest,
    Service,
    ServiceDefinition,
    ServiceRequest,
    TokenRecord,
)


class GeoReportRoute(APIRoute):
    """Renders every error of these routes as a GeoReport error list, in the path's format."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def georeport_handler(request: Request) -> Response:
            try:
                service.check_text(request.scope["path"], "path")
                for key, value in request.query_params.multi_items():
                    service.check_text(key + value, key)
                return await handler(request)
            except Exception as exc:  # every error is a GeoReport document, never our own body
                return formats.error_response(formats.of_path(request.url.path), exc)

        return georeport_handler


router = APIRouter(prefix="/open311/v2", tags=["open311"], route_class=GeoReportRoute)

ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"model": list[GeoReportError], "description": text}
    for code, text in ((400, "invalid input"), (403, "api_key refused"), (404, "not found"))
}


def _doc(model: Any) -> dict[int | str, dict[str, Any]]:
    return {200: {"model": model, "content": {"application/xml": {}}}, **ERRORS}


Fmt = Annotated[str, Path(description="json or xml", max_length=10)]
Jurisdiction = Annotated[
    str | None, Query(max_length=40, description="optional; our district's division code")
]


async def posted_fields(request: Request) -> dict[str, list[str]]:
    """The POST parameters: the form (urlencoded or multipart), over any in the query string."""
    fields: dict[str, list[str]] = {}
    for key, value in request.query_params.multi_items():
        fields.setdefault(key, []).append(value)
    content_type = request.headers.get("content-type", "")
    if content_type.startswith(("application/x-www-form-urlencoded", "multipart/form-data")):
        posted: dict[str, list[str]] = {}
        for key, item in (await request.form()).multi_items():
            if not isinstance(item, str):
                raise InvalidInput(
                    "不接收文件上传，请用 media_url / file uploads are not accepted: "
                    "send media_url",
                    field=key,
                )
            posted.setdefault(key, []).append(item)
        fields.update(posted)
    elif await request.body():
        raise InvalidInput(
            "请以表单提交 / send the request as application/x-www-form-urlencoded",
            field="content-type",
        )
    return fields


@router.get("/services.{fmt}", summary="GET services", responses=_doc(list[Service]))
def services(fmt: Fmt, session: DbSession, jurisdiction_id: Jurisdiction = None) -> Response:
    kind = formats.parse(fmt)
    rows = service.list_services(session, jurisdiction_id)
    return formats.render(kind, "services", "service", rows, 200)


@router.get(
    "/services/{service_code}.{fmt}",
    summary="GET service definition",
    responses=_doc(ServiceDefinition),
)
def service_definition(
    service_code: Annotated[str, Path(max_length=20)],
    fmt: Fmt,
    session: DbSession,
    jurisdiction_id: Jurisdiction = None,
) -> Response:
    kind = formats.parse(fmt)
    definition = service.service_definition(session, service_code, jurisdiction_id)
    return formats.render(kind, "service_definition", None, definition, 200)


@router.post(
    "/requests.{fmt}",
    summary="POST service request",
    status_code=201,
    responses={201: {"model": list[PostedRequest]}, **ERRORS},
)
def post_request(
    fmt: Fmt,
    request: Request,
    fields: Annotated[dict[str, list[str]], Depends(posted_fields)],
    session: DbSession,
) -> Response:
    """Form fields per the specification: ``api_key``, ``service_code``, ``lat`` + ``long``,
    ``address_string``, ``description``, ``attribute[code]``, ``media_url``, ``first_name``,
    ``last_name``, ``phone``, ``email``, ``device_id``, ``account_id``."""
    kind = formats.parse(fmt)
    posted = service.submit(session, fields, utcnow(), client_ip(request))
    return formats.render(kind, "service_requests", "request", [posted], 201)


@router.get("/requests.{fmt}", summary="GET service requests", responses=_doc(list[ServiceRequest]))
def list_requests(
    fmt: Fmt,
    session: DbSession,
    service_request_id: Annotated[str | None, Query(max_length=2000)] = None,
    service_code: Annotated[str | None, Query(max_length=500)] = None,
    start_date: Annotated[str | None, Query(max_length=40)] = None,
    end_date: Annotated[str | None, Query(max_length=40)] = None,
    status: Annotated[str | None, Query(max_length=20)] = None,
    page_size: Annotated[int, Query(ge=1, le=service.MAX_PAGE_SIZE)] = service.MAX_PAGE_SIZE,
    page: Annotated[int, Query(ge=1, le=100_000)] = 1,
    jurisdiction_id: Jurisdiction = None,
) -> Response:
    """Public. Default window: the last 90 days; at most 90 days; ``service_request_id``
    (comma-delimited) overrides every other filter."""
    kind = formats.parse(fmt)
    query = service.RequestQuery(
        service_request_id=service_request_id,
        service_code=service_code,
        start_date=start_date,
        end_date=end_date,
        status=status,
        page_size=page_size,
        page=page,
        jurisdiction_id=jurisdiction_id,
    )
    rows = service.find_requests(session, query, utcnow())
    return formats.render(kind, "service_requests", "request", rows, 200)


@router.get(
    "/requests/{service_request_id}.{fmt}",
    summary="GET service request",
    responses=_doc(list[ServiceRequest]),
)
def get_request(
    service_request_id: Annotated[str, Path(max_length=40)],
    fmt: Fmt,
    session: DbSession,
    jurisdiction_id: Jurisdiction = None,
) -> Response:
    kind = formats.parse(fmt)
    rows = service.get_request(session, service_request_id, jurisdiction_id)
    return formats.render(kind, "service_requests", "request", rows, 200)


@router.get(
    "/tokens/{token}.{fmt}",
    summary="GET service request id from a token",
    responses=_doc(list[TokenRecord]),
)
def token(
    token: Annotated[str, Path(max_length=80)],
    fmt: Fmt,
    session: DbSession,
    jurisdiction_id: Jurisdiction = None,
) -> Response:
    kind = formats.parse(fmt)
    rows = service.token_lookup(session, token, jurisdiction_id)
    return formats.render(kind, "service_requests", "request", rows, 200)


@router.api_route("/{path:path}", methods=["GET", "POST"], include_in_schema=False)
def unknown(path: str) -> Response:
    """Anything else under /open311/v2/ is a GeoReport 404, not a bare one."""
    raise NotFound(
        f"未知接口 {path[:40]!r} / unknown endpoint: use services, requests or tokens with "
        ".json or .xml",
        field="path",
    )
