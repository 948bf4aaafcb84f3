"""Attachments: type by magic bytes, bounded streaming upload, content-addressed storage, and
serving only to those who may see the case (or, while unattached, the uploader)."""

from __future__ import annotations

import base64
import hashlib
import struct
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from cityops.auth import accounts
from cityops.auth.models import Account, AuditEntry
from cityops.auth.principal import Principal
from cityops.db import utcnow
from cityops.errors import InvalidInput
from cityops.events import attachments, intake
from cityops.events.models import Attachment, Case

Headers = dict[str, str]
GRID = "500154024003001"  # demo-grid's grid, inside demo-town's town
URL = "/api/v1/attachments"


# --- small but real files, built by hand ---------------------------------------------------


def png(gray: int = 0) -> bytes:
    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
        )

    ihdr = struct.pack(">IIBBBBB", 1, 1, 8, 0, 0, 0, 0)  # 1×1, 8-bit greyscale
    idat = zlib.compress(bytes([0, gray]))  # filter byte, one pixel
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")


def jpeg() -> bytes:
    """A baseline 1×1 greyscale JPEG: one DC and one AC Huffman code, all coefficients zero."""

    def seg(marker: int, body: bytes) -> bytes:
        return bytes([0xFF, marker]) + struct.pack(">H", len(body) + 2) + body

    one_code = bytes([1] + [0] * 15) + b"\x00"  # one symbol (0) with a 1-bit code
    return (
        b"\xff\xd8"
        + seg(0xE0, b"JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00")
        + seg(0xDB, b"\x00" + bytes([1] * 64))
        + seg(0xC0, b"\x08\x00\x01\x00\x01\x01\x01\x11\x00")
        + seg(0xC4, b"\x00" + one_code)
        + seg(0xC4, b"\x10" + one_code)
        + seg(0xDA, b"\x01\x01\x00\x00\x3f\x00")
        + b"\x3f"  # DC difference 0, end of block, padded with 1 bits
        + b"\xff\xd9"
    )


# The 1×1 lossless WebP browsers are feature-tested with.
WEBP = base64.b64decode("UklGRhoAAABXRUJQVlA4TA0AAAAvAAAAEAcQERGIiP4HAA==")


def pdf() -> bytes:
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 72 72] >>",
    ]
    out = bytearray(b"%PDF-1.4\n")
    offsets = []
    for n, body in enumerate(objects, 1):
        offsets.append(len(out))
        out += b"%d 0 obj\n" % n + body + b"\nendobj\n"
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % o for o in offsets)
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (
        len(objects) + 1,
        xref,
    )
    return bytes(out)


FILES = {
    "image/jpeg": jpeg(),
    "image/png": png(),
    "image/webp": WEBP,
    "application/pdf": pdf(),
}


def multipart(
    data: bytes,
    filename: bytes | str = "photo.jpg",
    *,
    name: str = "file",
    declared: str = "application/octet-stream",
    extra: dict[str, str] | None = None,
) -> tuple[bytes, Headers]:
    """A multipart body built by hand, so odd file names reach the server byte for byte."""
    boundary = "----cityops-test-boundary-7f3a"
    raw_name = filename.encode() if isinstance(filename, str) else filename
    body = bytearray()
    for key, value in (extra or {}).items():
        body += f'--{boundary}\r\nContent-Disposition: form-data; name="{key}"\r\n\r\n'.encode()
        body += value.encode() + b"\r\n"
    body += f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"; filename="'.encode()
    body += raw_name + f'"\r\nContent-Type: {declared}\r\n\r\n'.encode()
    body += data + f"\r\n--{boundary}--\r\n".encode()
    return bytes(body), {"Content-Type": f"multipart/form-data; boundary={boundary}"}


# --- fixtures -------------------------------------------------------------------------------


@pytest.fixture
def store(app: FastAPI, tmp_path: Path) -> Path:
    root = tmp_path / "att"
    app.state.settings = app.state.settings.model_copy(update={"attachments_dir": root})
    return root


@pytest.fixture
def upload(anon: TestClient, store: Path) -> Callable[..., Any]:
    def send(headers: Headers, data: bytes, filename: bytes | str = "photo.jpg", **kw: Any) -> Any:
        body, content_type = multipart(data, filename, **kw)
        return anon.post(URL, content=body, headers=headers | content_type)

    return send


@pytest.fixture
def other_citizen(client: TestClient, anon: TestClient) -> Headers:
    body = {
        "name": "另一位群众",
        "roles": ["citizen"],
        "region_code": "500154",
        "username": "att-citizen-2",
        "password": "Another-citizen-2026",
    }
    assert client.post("/api/v1/users", json=body).status_code == 201, "made"
    r = anon.post(
        "/api/v1/auth/token", json={"username": body["username"], "password": body["password"]}
    )
    return {"Authorization": f"Bearer {r.json()['access_token']}"}


def blobs(root: Path) -> list[Path]:
    """Stored files (the temporary directory must be empty after every request)."""
    tmp = root / attachments.TMP_DIR
    assert not tmp.exists() or not any(tmp.iterdir()), "a temporary upload was left behind"
    return sorted(p for p in root.rglob("*") if p.is_file()) if root.exists() else []


def report(anon: TestClient, headers: Headers, ids: list[int]) -> Any:
    body = {"description": "井盖缺失，有安全隐患", "region_code": GRID, "attachments": ids}
    return anon.post("/api/v1/cases", json=body, headers=headers)


# --- upload ---------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", sorted(FILES))
def test_real_files_are_accepted_by_their_bytes(
    kind: str, upload: Callable[..., Any], login: Callable[[str], Headers], store: Path
) -> None:
    data = FILES[kind]
    # The client's name and content type are wrong on purpose: only the bytes count.
    r = upload(login("demo-citizen"), data, "whatever.txt", declared="text/html")
    assert r.status_code == 201, r.text
    body = r.json()
    sha = hashlib.sha256(data).hexdigest()
    assert body == {
        "id": body["id"],
        "sha256": sha,
        "content_type": kind,
        "size": len(data),
        "filename": "whatever.txt",
    }
    stored = store / sha[:2] / sha[2:4] / sha
    assert blobs(store) == [stored] and stored.read_bytes() == data


def test_upload_is_recorded_with_its_uploader(
    upload: Callable[..., Any], login: Callable[[str], Headers], session: Session
) -> None:
    before = session.scalar(select(func.count()).select_from(AuditEntry)) or 0
    r = upload(login("demo-grid"), png())
    assert r.status_code == 201
    row = session.get(Attachment, r.json()["id"])
    assert row is not None and row.case_id is None and row.uploaded_by.startswith("person:")
    entry = session.scalars(
        select(AuditEntry).where(AuditEntry.entity == "attachments").order_by(AuditEntry.id.desc())
    ).first()
    assert (session.scalar(select(func.count()).select_from(AuditEntry)) or 0) > before
    assert entry is not None and entry.action == "upload" and entry.entity_id == str(row.id)


@pytest.mark.parametrize(
    "data",
    [
        b"just some text, not a photo\n" * 4,
        b"<svg xmlns='http://www.w3.org/2000/svg'><script>alert(1)</script></svg>",
        b"GIF89a\x01\x00\x01\x00\x80\x00\x00\xff\xff\xff\x00\x00\x00!",  # a real type, not ours
        b"RIFF\x1a\x00\x00\x00WAVEfmt \x10\x00\x00\x00",  # RIFF, but not WebP
        b"\xff\xd8",  # too short to be anything
        b"",
    ],
    ids=["text", "svg", "gif", "wav", "short", "empty"],
)
def test_other_content_is_refused_whatever_its_name(
    data: bytes, upload: Callable[..., Any], login: Callable[[str], Headers], store: Path
) -> None:
    r = upload(login("demo-citizen"), data, "photo.jpg", declared="image/jpeg")
    assert r.status_code == 422, r.text
    error = r.json()["error"]
    assert error["fields"][0]["field"] == "file"
    if data:
        assert "JPEG" in error["message"] and "仅支持" in error["message"]
    assert blobs(store) == []


def test_oversize_is_refused_while_reading_and_nothing_is_stored(
    app: FastAPI,
    upload: Callable[..., Any],
    login: Callable[[str], Headers],
    store: Path,
    session: Session,
) -> None:
    app.state.settings = app.state.settings.model_copy(update={"attachment_max_bytes": 1024})
    headers = login("demo-citizen")
    rows = session.scalar(select(func.count()).select_from(Attachment))
    just_over = png() + b"\x00" * (1025 - len(png()))  # passes the envelope check, not the limit
    r = upload(headers, just_over)
    assert r.status_code == 413, r.text
    assert r.json()["error"]["fields"][0]["field"] == "file"
    assert (
        "文件过大" in r.json()["error"]["message"] and "too large" in r.json()["error"]["message"]
    )
    # A declared length far beyond the limit is refused before the body is read.
    r = upload(headers, png() + b"\x00" * 200_000)
    assert r.status_code == 413
    assert blobs(store) == []
    assert session.scalar(select(func.count()).select_from(Attachment)) == rows
    exactly = png() + b"\x00" * (1024 - len(png()))
    assert upload(headers, exactly).status_code == 201


def test_the_same_bytes_are_stored_once_but_recorded_per_upload(
    upload: Callable[..., Any], login: Callable[[str], Headers], store: Path
) -> None:
    first = upload(login("demo-citizen"), jpeg(), "a.jpg").json()
    second = upload(login("demo-grid"), jpeg(), "b.jpg").json()
    assert first["id"] != second["id"] and first["sha256"] == second["sha256"]
    assert len(blobs(store)) == 1
    upload(login("demo-grid"), png(7), "c.png")
    assert len(blobs(store)) == 2


def test_malformed_requests_are_refused(
    anon: TestClient, upload: Callable[..., Any], login: Callable[[str], Headers], store: Path
) -> None:
    headers = login("demo-citizen")
    r = anon.post(URL, json={"file": base64.b64encode(png()).decode()}, headers=headers)
    assert r.status_code == 422 and r.json()["error"]["fields"][0]["field"] == "file"
    r = upload(headers, png(), name="photo")  # wrong field name
    assert r.status_code == 422 and "file" in r.json()["error"]["message"]
    body, content_type = multipart(png())
    r = anon.post(URL, content=body[: len(body) // 2], headers=headers | content_type)
    assert r.status_code == 422
    assert blobs(store) == []
    assert anon.post(URL, content=body, headers=content_type).status_code == 401


def test_a_cookie_session_upload_with_the_csrf_token_in_the_form(
    anon: TestClient, credentials: dict[str, str], store: Path
) -> None:
    signed_in = anon.post(
        "/api/v1/auth/login",
        json={"username": "demo-citizen", "password": credentials["demo-citizen"]},
    ).json()
    body, content_type = multipart(png(), "form.png")
    assert anon.post(URL, content=body, headers=content_type).status_code == 403
    body, content_type = multipart(
        png(), "form.png", extra={"csrf_token": str(signed_in["csrf_token"])}
    )
    r = anon.post(URL, content=body, headers=content_type)
    assert r.status_code == 201, r.text
    assert r.json()["content_type"] == "image/png" and r.json()["filename"] == "form.png"
    assert len(blobs(store)) == 1


# --- file names -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "clean"),
    [
        ("../../../../etc/passwd", "passwd"),
        ("..\\..\\Windows\\System32\\evil.png", "evil.png"),
        ("/var/lib/cityops/attachments/ab/cd/x", "x"),
        ("..", ""),
        (".htaccess", "htaccess"),
        ("photo\x00.png\x1b[31m", "photo.png[31m"),
        ("invoice\u202egnp.exe", "invoicegnp.exe"),  # no right-to-left override
        ("  井盖\n照片 .jpg ", "井盖 照片 .jpg"),
        ("a" * 300 + ".jpeg", "a" * (attachments.MAX_FILENAME - 5) + ".jpeg"),
        (None, ""),
    ],
)
def test_file_names_are_made_harmless(raw: str | None, clean: str) -> None:
    assert attachments.clean_filename(raw) == clean


def test_path_traversal_file_names_cannot_escape_the_store(
    upload: Callable[..., Any],
    anon: TestClient,
    login: Callable[[str], Headers],
    store: Path,
    tmp_path: Path,
) -> None:
    headers = login("demo-citizen")
    names: list[bytes | str] = [
        "../../../outside.png",
        "..\\..\\outside.png",
        "/tmp/outside.png",
        "C:\\outside.png",
        b"../\xe4\xba\x95\x1b\x7f.png",
    ]
    for name in names:
        r = upload(headers, png(), name)
        assert r.status_code == 201, r.text
        stored = r.json()["filename"]
        assert "/" not in stored and "\\" not in stored and not stored.startswith(".")
        assert all(ch.isprintable() for ch in stored)
        served = anon.get(f"{URL}/{r.json()['id']}", headers=headers)
        assert served.status_code == 200 and served.content == png()
    assert {p.relative_to(tmp_path).parts[0] for p in tmp_path.rglob("*") if p.is_file()} == {"att"}
    assert len(blobs(store)) == 1


# --- serving --------------------------------------------------------------------------------


def test_serving_to_the_reporter_and_to_staff_who_see_the_case(
    upload: Callable[..., Any],
    anon: TestClient,
    client: TestClient,
    login: Callable[[str], Headers],
    other_citizen: Headers,
    session: Session,
) -> None:
    citizen = login("demo-citizen")
    up = upload(citizen, jpeg(), "井盖 照片.jpg").json()
    r = report(anon, citizen, [up["id"]])
    assert r.status_code == 201, r.text
    case = session.scalar(select(Case).where(Case.code == r.json()["code"]))
    row = session.get(Attachment, up["id"])
    assert case is not None and row is not None
    session.refresh(row)
    assert row.case_id == case.id
    assert [a.id for a in attachments.for_case(session, case)] == [up["id"]]

    url = f"{URL}/{up['id']}"
    mine = anon.get(url, headers=citizen)
    assert mine.status_code == 200 and mine.content == jpeg()
    assert mine.headers["content-type"] == "image/jpeg"
    assert mine.headers["x-content-type-options"] == "nosniff"
    assert mine.headers["cache-control"] == "private"
    disposition = mine.headers["content-disposition"]
    assert disposition.startswith("inline;")
    assert "filename*=UTF-8''%E4%BA%95%E7%9B%96%20%E7%85%A7%E7%89%87.jpg" in disposition
    assert 'filename="__ __.jpg"' in disposition
    for staff in (login("demo-town"), login("demo-grid"), login("demo-intake")):
        assert anon.get(url, headers=staff).status_code == 200
    assert client.get(url).status_code == 200

    refused = anon.get(url, headers=other_citizen)
    missing = anon.get(f"{URL}/999999", headers=other_citizen)
    assert refused.status_code == missing.status_code == 404
    assert refused.json()["error"]["code"] == missing.json()["error"]["code"] == "not_found"
    # A handler sees only cases its unit worked on; this one has not been dispatched.
    assert anon.get(url, headers=login("demo-handler")).status_code == 404


def test_an_unattached_upload_is_served_only_to_its_uploader(
    upload: Callable[..., Any],
    anon: TestClient,
    client: TestClient,
    login: Callable[[str], Headers],
    other_citizen: Headers,
) -> None:
    grid = login("demo-grid")
    up = upload(grid, pdf(), "检查记录.pdf").json()
    url = f"{URL}/{up['id']}"
    r = anon.get(url, headers=grid)
    assert r.status_code == 200 and r.headers["content-type"] == "application/pdf"
    assert r.content == pdf()
    for other in (login("demo-town"), login("demo-citizen"), other_citizen):
        assert anon.get(url, headers=other).status_code == 404
    assert client.get(url).status_code == 404  # not even the administrator, until attached
    assert anon.get(url).status_code == 401


def test_a_stored_file_gone_missing_is_not_found(
    upload: Callable[..., Any], anon: TestClient, login: Callable[[str], Headers], store: Path
) -> None:
    headers = login("demo-citizen")
    up = upload(headers, png()).json()
    (store / up["sha256"][:2] / up["sha256"][2:4] / up["sha256"]).unlink()
    assert anon.get(f"{URL}/{up['id']}", headers=headers).status_code == 404


# --- attaching to a case --------------------------------------------------------------------


def test_a_case_reported_with_an_attachment_links_it(
    upload: Callable[..., Any],
    anon: TestClient,
    login: Callable[[str], Headers],
    session: Session,
) -> None:
    grid = login("demo-grid")
    ids = [upload(grid, png()).json()["id"], upload(grid, pdf(), "记录.pdf").json()["id"]]
    r = report(anon, grid, ids)
    assert r.status_code == 201, r.text
    case_id = session.scalar(select(Case.id).where(Case.code == r.json()["code"]))
    linked = session.scalars(select(Attachment.id).where(Attachment.case_id == case_id)).all()
    assert sorted(linked) == sorted(ids)
    # Already on a case: it cannot be attached to another one.
    again = report(anon, grid, ids[:1])
    assert again.status_code == 422 and again.json()["error"]["fields"][0]["field"] == (
        "attachments"
    )


def test_someone_elses_upload_cannot_be_attached_when_reporting(
    upload: Callable[..., Any],
    anon: TestClient,
    login: Callable[[str], Headers],
    session: Session,
) -> None:
    theirs = upload(login("demo-grid"), png()).json()["id"]
    r = report(anon, login("demo-citizen"), [theirs])
    assert r.status_code == 422, r.text
    assert r.json()["error"]["fields"][0]["field"] == "attachments"
    row = session.get(Attachment, theirs)
    assert row is not None and row.case_id is None


def _person(session: Session, username: str) -> Principal:
    account_id = session.scalar(select(Account.id).where(Account.username == username))
    assert account_id is not None
    return accounts.principal_for(session, accounts.get_account(session, account_id), via="token")


def test_link_accepts_only_the_callers_own_unattached_uploads(
    session: Session, tmp_path: Path
) -> None:
    """The helper intake and lifecycle are to call."""
    citizen, grid = _person(session, "demo-citizen"), _person(session, "demo-grid")
    with attachments.BlobWriter(tmp_path, 10_000) as writer:
        writer.write(png())
        blob = writer.finish()
    mine = attachments.store(session, citizen, blob, "mine.png")
    other = attachments.store(session, grid, blob, "theirs.png")
    case, _new = intake.report(
        session, citizen, intake.Report("路灯不亮", region_code=GRID), utcnow()
    )
    with pytest.raises(InvalidInput) as refused:
        attachments.link(session, case, [mine.id, other.id], citizen)
    assert refused.value.field == "attachments" and str(other.id) in refused.value.message
    assert mine.case_id is None  # all or nothing
    with pytest.raises(InvalidInput, match="not yours") as unknown:
        attachments.link(session, case, [10**8], citizen, field="evidence")
    assert unknown.value.field == "evidence"

    assert attachments.link(session, case, [mine.id, mine.id], citizen) == [mine]
    assert mine.case_id == case.id
    # Linking again to the same case is harmless, even by someone else who sees the case.
    attachments.link(session, case, [mine.id], grid)
    second, _new = intake.report(
        session, citizen, intake.Report("又一处路灯不亮", region_code=GRID), utcnow()
    )
    with pytest.raises(InvalidInput):
        attachments.link(session, second, [mine.id], citizen)
    assert attachments.get_visible(session, citizen, mine.id) is mine


def test_sniffing_and_content_disposition() -> None:
    assert {attachments.sniff(data[:16]) for data in FILES.values()} == set(FILES)
    assert attachments.sniff(b"RIFF\x00\x00\x00\x00WEBPXXXX") is None
    cd = attachments.content_disposition('a"b;c%d.png', 5, "image/png")
    assert cd == "inline; filename=\"a_b_c_d.png\"; filename*=UTF-8''a%22b%3Bc%25d.png"
    assert attachments.content_disposition("", 5, "application/pdf") == (
        "inline; filename=\"attachment-5.pdf\"; filename*=UTF-8''attachment-5.pdf"
    )
