"""GeoReport documents as JSON or XML (the path's ``.json`` / ``.xml`` suffix), and errors as
the specification's ``[{"code": 400, "description": "…"}]`` / ``<errors><error>…``."""

from __future__ import annotations

import logging
import re
import xml.etree.ElementTree as ET
from collections.abc import Sequence
from enum import StrEnum
from typing import Any

from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel
from starlette.exceptions import HTTPException

from cityops.errors import CityOpsError, NotFound
from cityops.open311.schemas import GeoReportError

log = logging.getLogger("cityops.open311")


class Format(StrEnum):
    json = "json"
    xml = "xml"


XML_MEDIA_TYPE = "application/xml; charset=utf-8"
# Container element → the element of each item inside it.
CHILD_TAGS = {"attributes": "attribute", "values": "value"}
# Characters XML 1.0 cannot carry at all (most C0 controls, lone surrogates, U+FFFE/U+FFFF).
_NOT_XML = re.compile("[^\t\n\r\u0020-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")
# Our field names → the specification's, for error descriptions.
FIELD_NAMES = {
    "lon": "long",
    "lat,lon": "lat,long",
    "category": "service_code",
    "urgency": "attribute[urgency]",
    "attachments": "media_url",
}


def parse(fmt: str) -> Format:
    try:
        return Format(fmt.lower())
    except ValueError:
        raise NotFound(
            f"不支持的格式 {fmt[:10]!r}，请用 .json 或 .xml / "
            "unsupported format: use .json or .xml",
            field="format",
        ) from None


def of_path(path: str) -> Format:
    """The format an error should be in: the path's suffix, JSON when it has none we know."""
    return Format.xml if path.lower().endswith(".xml") else Format.json


def render(
    fmt: Format, root: str, item: str | None, data: BaseModel | Sequence[BaseModel], status: int
) -> Response:
    """One document: a list of ``item`` elements under ``root``, or (item None) one object."""
    if isinstance(data, BaseModel):
        if fmt is Format.json:
            return JSONResponse(data.model_dump(mode="json"), status_code=status)
        element = ET.Element(root)
        _fill(element, data.model_dump(mode="json"))
        return _xml(element, status)
    if fmt is Format.json:
        return JSONResponse([d.model_dump(mode="json") for d in data], status_code=status)
    element = ET.Element(root)
    for d in data:
        _fill(ET.SubElement(element, item or "item"), d.model_dump(mode="json"))
    return _xml(element, status)


def _xml(element: ET.Element, status: int) -> Response:
    body = ET.tostring(element, encoding="utf-8", xml_declaration=True)
    return Response(body, status_code=status, media_type=XML_MEDIA_TYPE)


def _fill(parent: ET.Element, data: dict[str, Any]) -> None:
    for key, value in data.items():
        element = ET.SubElement(parent, key)
        if isinstance(value, list):
            for entry in value:
                _fill(ET.SubElement(element, CHILD_TAGS.get(key, "item")), entry)
        elif isinstance(value, dict):
            _fill(element, value)
        elif isinstance(value, bool):
            element.text = "true" if value else "false"
        elif value is not None:
            element.text = _NOT_XML.sub("", str(value))


def _field(name: str | None) -> str | None:
    return FIELD_NAMES.get(name, name) if name else None


def error_parts(exc: Exception) -> tuple[int, str, dict[str, str]]:
    """HTTP status, description and headers of an error (422 becomes the spec's 400)."""
    if isinstance(exc, CityOpsError):
        status = 400 if exc.status_code == 422 else exc.status_code
        field = _field(exc.field)
        description = f"{field}: {exc.message}" if field else exc.message
        return status, description, exc.headers
    if isinstance(exc, RequestValidationError):
        parts = []
        for err in exc.errors():
            loc = [str(p) for p in err.get("loc", ()) if p not in ("query", "path", "body")]
            parts.append(f"{_field('.'.join(loc)) or 'request'}: {err.get('msg', 'invalid')}")
        return 400, "; ".join(parts) or "invalid request", {}
    if isinstance(exc, HTTPException):
        return exc.status_code, str(exc.detail), dict(exc.headers or {})
    log.exception("open311: unexpected error", exc_info=exc)
    return 500, "服务器内部错误 / internal error", {}


def error_response(fmt: Format, exc: Exception) -> Response:
    status, description, headers = error_parts(exc)
    response = render(
        fmt, "errors", "error", [GeoReportError(code=status, description=description)], status
    )
    response.headers.update(headers)
    return response
