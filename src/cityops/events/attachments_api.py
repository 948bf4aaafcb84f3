"""Upload and download of attachments (photos and PDF documents for cases)."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import aclosing
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

from anyio import to_thread
from fastapi import APIRouter, Depends, Request
from fastapi import Path as PathParam
from fastapi.responses import FileResponse
from pydantic import BaseModel
from python_multipart.exceptions import FormParserError
from python_multipart.multipart import MultipartParser, parse_options_header
from starlette.datastructures import UploadFile

from cityops.auth.deps import Require
from cityops.auth.permissions import Permission as P
from cityops.auth.principal import Principal
from cityops.deps import DbSession
from cityops.errors import InvalidInput, NotFound
from cityops.events import attachments
from cityops.events.attachments import Blob, BlobWriter, TooLarge

if TYPE_CHECKING:
    from python_multipart.multipart import MultipartCallbacks

log = logging.getLogger("cityops.attachments")

router = APIRouter(prefix="/api/v1", tags=["attachments"])

Reporter = Annotated[Principal, Depends(Require(P.cases_report))]
Reader = Annotated[Principal, Depends(Require(P.cases_read))]

FIELD = "file"
# Room for the multipart framing and a few small fields (a CSRF token) around the file.
ENVELOPE = 64 * 1024
MAX_PARTS = 8
MAX_FIELD_BYTES = 4 * 1024
IMAGE_CSP = "default-src 'none'; img-src 'self'; style-src 'unsafe-inline'; sandbox"


class AttachmentOut(BaseModel):
    id: int
    sha256: str
    content_type: str
    size: int
    filename: str


UPLOAD_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": [FIELD],
                    "properties": {FIELD: {"type": "string", "format": "binary"}},
                }
            }
        },
    }
}


@router.post(
    "/attachments", response_model=AttachmentOut, status_code=201, openapi_extra=UPLOAD_BODY
)
async def upload(request: Request, principal: Reporter, session: DbSession) -> AttachmentOut:
    """Upload one photo (JPEG, PNG, WebP) or PDF as the multipart field ``file``; attach it to a
    case by giving its id when reporting (``attachments``) or acting (``evidence``)."""
    settings = request.app.state.settings
    root: Path = settings.attachments_dir
    max_bytes: int = settings.attachment_max_bytes
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > max_bytes + ENVELOPE:
        raise TooLarge(attachments.too_large_message(max_bytes), field=FIELD)
    blob, filename = await _receive(request, root, max_bytes)
    row = await to_thread.run_sync(attachments.store, session, principal, blob, filename)
    return AttachmentOut(
        id=row.id,
        sha256=row.sha256,
        content_type=row.content_type,
        size=row.size,
        filename=row.filename,
    )


async def _receive(request: Request, root: Path, max_bytes: int) -> tuple[Blob, str]:
    content_type, params = parse_options_header(request.headers.get("content-type"))
    if content_type != b"multipart/form-data" or not params.get(b"boundary"):
        raise InvalidInput(
            "请以 multipart/form-data 上传文件（字段 file）/ "
            "upload the file as multipart/form-data, field “file”",
            field=FIELD,
        )
    writer = await to_thread.run_sync(BlobWriter, root, max_bytes)
    try:
        async with aclosing(request.stream()) as stream:
            try:
                first = await anext(stream)
            except RuntimeError:
                # The body was already read: a cookie session's CSRF check parsed the form (its
                # file parts spooled to disk by Starlette). Copy from there, same limits.
                filename = await _from_parsed_form(request, writer)
            else:
                filename = await _stream_multipart(
                    first, stream, params[b"boundary"], writer, max_bytes
                )
        blob = await to_thread.run_sync(writer.finish)
    finally:
        await to_thread.run_sync(writer.discard)
    return blob, filename


async def _stream_multipart(
    first: bytes,
    rest: AsyncIterator[bytes],
    boundary: bytes,
    writer: BlobWriter,
    max_bytes: int,
) -> str:
    """Parse the body as it arrives, writing the ``file`` part straight to the writer: the size
    limit holds while reading, and nothing but small form fields is ever kept in memory."""
    state = _Parts()
    callbacks: MultipartCallbacks = {
        "on_part_begin": state.begin,
        "on_header_field": state.header_field,
        "on_header_value": state.header_value,
        "on_header_end": state.header_end,
        "on_headers_finished": state.headers_finished,
        "on_part_data": state.data,
        "on_part_end": state.end,
    }
    parser = MultipartParser(boundary, callbacks)
    received = 0
    chunk = first
    try:
        while True:
            received += len(chunk)
            if received > max_bytes + ENVELOPE:
                raise TooLarge(attachments.too_large_message(max_bytes), field=FIELD)
            parser.write(chunk)
            if state.pending:
                pending, state.pending = b"".join(state.pending), []
                await to_thread.run_sync(writer.write, pending)
            try:
                chunk = await anext(rest)
            except StopAsyncIteration:
                break
        parser.finalize()
    except FormParserError:
        raise InvalidInput("上传内容格式错误 / malformed multipart body", field=FIELD) from None
    if not state.found:
        raise InvalidInput("请选择要上传的文件 / the file field “file” is required", field=FIELD)
    return state.filename


class _Parts:
    """Callback state for the streaming parser: keeps the ``file`` part's bytes for the writer
    and drops everything else (bounded)."""

    def __init__(self) -> None:
        self.found = False
        self.filename = ""
        self.pending: list[bytes] = []
        self.count = 0
        self._in_file = False
        self._field_bytes = 0
        self._header_name = b""
        self._header_value = b""
        self._disposition = b""

    def begin(self) -> None:
        self.count += 1
        if self.count > MAX_PARTS:
            raise InvalidInput("表单字段过多 / too many form fields", field=FIELD)
        self._in_file = False
        self._field_bytes = 0
        self._disposition = b""

    def header_field(self, data: bytes, start: int, end: int) -> None:
        self._header_name += data[start:end]
        self._check_header()

    def header_value(self, data: bytes, start: int, end: int) -> None:
        self._header_value += data[start:end]
        self._check_header()

    def _check_header(self) -> None:
        if len(self._header_name) + len(self._header_value) > MAX_FIELD_BYTES:
            raise InvalidInput("表单头过长 / form part header too long", field=FIELD)

    def header_end(self) -> None:
        if self._header_name.strip().lower() == b"content-disposition":
            self._disposition = self._header_value
        self._header_name = self._header_value = b""

    def headers_finished(self) -> None:
        _kind, options = parse_options_header(self._disposition)
        if options.get(b"name") != FIELD.encode():
            return
        if self.found:
            raise InvalidInput("一次只能上传一个文件 / upload one file at a time", field=FIELD)
        self.found = self._in_file = True
        self.filename = options.get(b"filename", b"").decode("utf-8", errors="replace")

    def data(self, data: bytes, start: int, end: int) -> None:
        if self._in_file:
            self.pending.append(data[start:end])
            return
        self._field_bytes += end - start
        if self._field_bytes > MAX_FIELD_BYTES:
            raise InvalidInput("表单字段过长 / form field too long", field=FIELD)

    def end(self) -> None:
        self._in_file = False


async def _from_parsed_form(request: Request, writer: BlobWriter) -> str:
    form = await request.form()
    files = [v for v in form.getlist(FIELD) if isinstance(v, UploadFile)]
    if not files:
        raise InvalidInput("请选择要上传的文件 / the file field “file” is required", field=FIELD)
    if len(files) > 1:
        raise InvalidInput("一次只能上传一个文件 / upload one file at a time", field=FIELD)
    upload = files[0]
    while chunk := await upload.read(attachments.CHUNK):
        await to_thread.run_sync(writer.write, chunk)
    return upload.filename or ""


@router.get(
    "/attachments/{attachment_id}",
    response_class=FileResponse,
    responses={200: {"content": {t: {} for t in attachments.EXTENSIONS}}},
)
def download(
    attachment_id: Annotated[int, PathParam(ge=1, le=2**31 - 1)],
    request: Request,
    principal: Reader,
    session: DbSession,
) -> FileResponse:
    """The file, if you may see the case it is attached to (or uploaded it, while unattached)."""
    row = attachments.get_visible(session, principal, attachment_id)
    path = attachments.blob_path(request.app.state.settings.attachments_dir, row.sha256)
    if not path.is_file():
        log.error("attachment %s: stored file %s is missing", row.id, path)
        raise NotFound(
            f"附件 {attachment_id} 不存在 / attachment {attachment_id} not found", field="id"
        )
    headers = {
        "Content-Disposition": attachments.content_disposition(
            row.filename, row.id, row.content_type
        ),
        "X-Content-Type-Options": "nosniff",
        "Cache-Control": "private",
    }
    if row.content_type.startswith("image/"):
        headers["Content-Security-Policy"] = IMAGE_CSP
    return FileResponse(path, media_type=row.content_type, headers=headers)
