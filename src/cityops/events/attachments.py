"""Attachments: photos and documents, recognised by their bytes and stored once by content hash.

Files live under ``attachments_dir/ab/cd/<sha256>``; the same bytes uploaded twice are stored
once, but every upload gets its own ``Attachment`` row so we know who uploaded what. The client's
file name is metadata only (sanitised, never used to build a path) and its declared content type
is ignored: the type comes from the file's magic bytes.

Who may see an attachment: whoever may see the case it is attached to; while unattached, only
its uploader. Only the uploader may attach an unattached file to a case (``link``).
"""

from __future__ import annotations

import hashlib
import os
import re
import tempfile
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import IO, Any
from urllib.parse import quote

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from cityops.auth import audit
from cityops.auth.principal import Principal
from cityops.errors import CityOpsError, InvalidInput, NotFound
from cityops.events import queries
from cityops.events.models import Attachment, Case

CHUNK = 64 * 1024
HEAD = 16  # bytes needed to recognise every accepted type
MAX_FILENAME = 120
TMP_DIR = ".tmp"
SHA256 = re.compile(r"^[0-9a-f]{64}$")
EXTENSIONS = {
    "image/jpeg": ".jpg",
    "image/png": ".png",
    "image/webp": ".webp",
    "application/pdf": ".pdf",
}
UNSUPPORTED = (
    "仅支持 JPEG、PNG、WebP 图片和 PDF 文件 / "
    "only JPEG, PNG, WebP images and PDF files are accepted"
)


class TooLarge(CityOpsError):
    status_code = 413
    code = "too_large"


def sniff(head: bytes) -> str | None:
    """The content type of a file from its first bytes (magic numbers), or None."""
    if head.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP" and head[12:16] in (b"VP8 ", b"VP8L", b"VP8X"):
        return "image/webp"
    if head.startswith(b"%PDF-"):
        return "application/pdf"
    return None


def too_large_message(max_bytes: int) -> str:
    mib = max_bytes / (1024 * 1024)
    return f"文件过大（最大 {mib:g} MiB）/ file too large (at most {mib:g} MiB)"


def clean_filename(raw: str | None) -> str:
    """A client's file name made harmless for display: no directories, no control or format
    characters (such as right-to-left overrides), no leading dots, at most MAX_FILENAME chars."""
    if not raw:
        return ""
    name = unicodedata.normalize("NFC", raw)
    name = re.split(r"[/\\]", name)[-1]
    name = "".join(
        " " if ch.isspace() else ch
        for ch in name
        if ch.isspace() or unicodedata.category(ch) not in ("Cc", "Cf", "Cs", "Co", "Cn")
    )
    name = " ".join(name.split()).lstrip(". ").rstrip(" ")
    if len(name) > MAX_FILENAME:
        stem, dot, ext = name.rpartition(".")
        ext = dot + ext if stem and len(ext) <= 10 else ""
        name = name[: MAX_FILENAME - len(ext)].rstrip(" .") + ext
    return name


def content_disposition(filename: str, attachment_id: int, content_type: str) -> str:
    """``inline`` with an ASCII fallback name and the UTF-8 name per RFC 5987/6266."""
    name = clean_filename(filename) or f"attachment-{attachment_id}{EXTENSIONS[content_type]}"
    fallback = "".join(ch if 0x20 <= ord(ch) < 0x7F and ch not in '"\\%;' else "_" for ch in name)
    return f"inline; filename=\"{fallback}\"; filename*=UTF-8''{quote(name, safe='')}"


def blob_path(root: Path, sha256: str) -> Path:
    if not SHA256.match(sha256):
        raise ValueError(f"not a SHA-256 hex digest: {sha256!r}")
    return root / sha256[:2] / sha256[2:4] / sha256


def uploader_id(principal: Principal) -> str:
    """The stable identity recorded as an attachment's uploader."""
    return f"{principal.kind}:{principal.id}"


@dataclass(frozen=True)
class Blob:
    sha256: str
    size: int
    content_type: str
    path: Path
    new: bool  # False when identical bytes were already stored


class BlobWriter:
    """Receives a file in chunks: recognises its type from the first bytes, enforces the size
    limit as it goes, hashes and writes to a temporary file next to the store, and on ``finish``
    renames it into place (or drops it when the same bytes are already stored).

    Use as a context manager: leaving it without ``finish`` (an error) deletes the temporary file.
    """

    def __init__(self, root: Path, max_bytes: int) -> None:
        self.root = root
        self.max_bytes = max_bytes
        self.size = 0
        self.content_type: str | None = None
        self._head = b""
        self._hash = hashlib.sha256()
        tmp = root / TMP_DIR
        tmp.mkdir(parents=True, exist_ok=True)
        fd, name = tempfile.mkstemp(dir=tmp, prefix="upload-")
        self._tmp: Path | None = Path(name)
        self._file: IO[bytes] | None = os.fdopen(fd, "wb")

    def __enter__(self) -> BlobWriter:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.discard()

    def write(self, chunk: bytes) -> None:
        if self._file is None:
            raise RuntimeError("the upload is already finished")
        if not chunk:
            return
        self.size += len(chunk)
        if self.size > self.max_bytes:
            raise TooLarge(too_large_message(self.max_bytes), field="file")
        if self.content_type is None:
            self._head += chunk[: HEAD - len(self._head)]
            if len(self._head) >= HEAD:
                self._recognise()
        self._hash.update(chunk)
        self._file.write(chunk)

    def _recognise(self) -> None:
        self.content_type = sniff(self._head) if len(self._head) >= HEAD else None
        if self.content_type is None:
            raise InvalidInput(UNSUPPORTED, field="file")

    def finish(self) -> Blob:
        if self._file is None:
            raise RuntimeError("the upload is already finished")
        if self.size == 0:
            raise InvalidInput("文件为空 / the file is empty", field="file")
        if self.content_type is None:
            self._recognise()
        assert self.content_type is not None
        self._file.flush()
        os.fsync(self._file.fileno())
        self._file.close()
        self._file = None
        tmp, self._tmp = self._tmp, None
        assert tmp is not None
        sha256 = self._hash.hexdigest()
        final = blob_path(self.root, sha256)
        if final.exists():
            tmp.unlink(missing_ok=True)
            new = False
        else:
            final.parent.mkdir(parents=True, exist_ok=True)
            os.replace(tmp, final)  # atomic: readers see all of the file or none of it
            new = True
        return Blob(sha256, self.size, self.content_type, final, new)

    def discard(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None
        if self._tmp is not None:
            self._tmp.unlink(missing_ok=True)
            self._tmp = None


def copy_into(writer: BlobWriter, source: IO[bytes]) -> None:
    """Feed a file-like object to a writer in chunks."""
    while chunk := source.read(CHUNK):
        writer.write(chunk)


def store(session: Session, principal: Principal, blob: Blob, filename: str | None) -> Attachment:
    """Record an upload (one row per upload, even for bytes already stored)."""
    row = Attachment(
        sha256=blob.sha256,
        content_type=blob.content_type,
        size=blob.size,
        filename=clean_filename(filename),
        case_id=None,
        uploaded_by=uploader_id(principal),
    )
    session.add(row)
    session.flush()
    summary: dict[str, Any] = {
        "sha256": blob.sha256,
        "content_type": blob.content_type,
        "size": blob.size,
        "filename": row.filename,
        "stored": "new" if blob.new else "duplicate",
    }
    audit.record(session, "upload", "attachments", row.id, summary)
    return row


def get_visible(session: Session, principal: Principal, attachment_id: int) -> Attachment:
    """The attachment if the caller may see it; NotFound otherwise (existence is not revealed)."""
    row = session.get(Attachment, attachment_id)
    if row is not None:
        if row.case_id is None:
            if row.uploaded_by == uploader_id(principal):
                return row
        elif session.scalar(
            select(Case.id).where(Case.id == row.case_id, queries.visible(principal))
        ):
            return row
    raise NotFound(
        f"附件 {attachment_id} 不存在 / attachment {attachment_id} not found", field="id"
    )


def check_owned(
    session: Session,
    principal: Principal,
    ids: Sequence[int],
    case: Case | None = None,
    *,
    field: str = "attachments",
) -> list[Attachment]:
    """The attachments, if each exists and is either unattached and uploaded by the caller, or
    already attached to ``case``; InvalidInput on ``field`` otherwise (one message for unknown,
    someone else's and attached elsewhere, so nothing is revealed)."""
    wanted = list(dict.fromkeys(ids))
    if not wanted:
        return []
    rows = {a.id: a for a in session.scalars(select(Attachment).where(Attachment.id.in_(wanted)))}
    me = uploader_id(principal)
    bad = [
        i
        for i in wanted
        if i not in rows
        or not (
            (rows[i].case_id is None and rows[i].uploaded_by == me)
            or (case is not None and case.id is not None and rows[i].case_id == case.id)
        )
    ]
    if bad:
        raise InvalidInput(
            f"附件无效或不属于您：{', '.join(map(str, bad))} / "
            f"unknown attachment or not yours: {', '.join(map(str, bad))}",
            field=field,
        )
    return [rows[i] for i in wanted]


def link(
    session: Session,
    case: Case,
    ids: Sequence[int],
    principal: Principal,
    *,
    field: str = "attachments",
) -> list[Attachment]:
    """Attach the caller's own unattached uploads to a case (ids already on this case are
    accepted and left as they are). All or nothing; safe against two requests racing to attach
    the same upload. Returns the attachments."""
    rows = check_owned(session, principal, ids, case, field=field)
    fresh = [a.id for a in rows if a.case_id is None]
    if fresh:
        result = session.execute(
            update(Attachment)
            .where(
                Attachment.id.in_(fresh),
                Attachment.case_id.is_(None),
                Attachment.uploaded_by == uploader_id(principal),
            )
            .values(case_id=case.id)
            .execution_options(synchronize_session="fetch")
        )
        if getattr(result, "rowcount", len(fresh)) != len(fresh):
            raise InvalidInput(
                "附件已被关联到其他案件 / an attachment was just attached elsewhere", field=field
            )
        audit.record(
            session, "link", "attachments", case.id, {"case": case.code, "attachments": fresh}
        )
    return rows


def for_case(session: Session, case: Case) -> list[Attachment]:
    """A case's attachments, oldest first."""
    return list(
        session.scalars(
            select(Attachment).where(Attachment.case_id == case.id).order_by(Attachment.id)
        )
    )
