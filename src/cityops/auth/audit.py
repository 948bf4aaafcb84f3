"""The audit log: automatic entries for every change to audited models, plus explicit events.

Requests put an ``Actor`` in ``session.info``; on every flush the changes to models marked
``__audit__`` are written with who, when, what (entity, id, action), a before/after summary and
the client address, in the same transaction as the change itself.
"""

from __future__ import annotations

import getpass
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from sqlalchemy import Select, event, insert, inspect, select
from sqlalchemy.orm import Session, UOWTransaction

from cityops.auth.models import AuditEntry
from cityops.db import utcnow

ACTOR_KEY = "cityops.actor"
BULK_KEY = "cityops.audit_bulk"
MAX_VALUE_CHARS = 200


@dataclass(frozen=True)
class Actor:
    kind: str  # person | api_key | system | anonymous
    id: str = ""
    name: str = ""
    ip: str = ""


def set_actor(session: Session, actor: Actor) -> None:
    session.info[ACTOR_KEY] = actor


def actor_of(session: Session) -> Actor:
    actor = session.info.get(ACTOR_KEY)
    return actor if isinstance(actor, Actor) else Actor("system", name="system")


def cli_actor() -> Actor:
    try:
        user = getpass.getuser()
    except OSError:
        user = "unknown"
    return Actor("system", id=f"cli:{user}", name=f"命令行 {user}")


def record(
    session: Session,
    action: str,
    entity: str,
    entity_id: str | int = "",
    summary: dict[str, Any] | None = None,
    *,
    actor: Actor | None = None,
    note: str = "",
) -> None:
    """An explicit audit event (log-in, unmasking, export, bulk import …)."""
    who = actor or actor_of(session)
    session.connection().execute(
        insert(AuditEntry),
        [_row(who, action, entity, str(entity_id), summary or {}, note)],
    )


@contextmanager
def bulk(session: Session, action: str, entity: str) -> Iterator[dict[str, Any]]:
    """One entry for a bulk operation (an import of thousands of rows) instead of one per row;
    the caller fills in the summary it yields."""
    summary: dict[str, Any] = {}
    session.info[BULK_KEY] = True
    try:
        yield summary
        session.flush()
    finally:
        session.info.pop(BULK_KEY, None)
    record(session, action, entity, summary=summary)


def _row(
    actor: Actor, action: str, entity: str, entity_id: str, summary: dict[str, Any], note: str
) -> dict[str, Any]:
    return {
        "at": utcnow(),
        "actor_kind": actor.kind,
        "actor_id": actor.id[:64],
        "actor_name": actor.name[:100],
        "action": action,
        "entity": entity,
        "entity_id": entity_id[:64],
        "summary": summary,
        "ip": actor.ip[:64],
        "note": note,
    }


def _plain(value: Any) -> Any:
    if value is None or isinstance(value, bool | int | float):
        return value
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, dict | list):
        text = repr(value)
        return (
            value
            if len(text) <= MAX_VALUE_CHARS
            else f"<{type(value).__name__}, {len(text)} chars>"
        )
    text = str(value)
    return text if len(text) <= MAX_VALUE_CHARS else text[:MAX_VALUE_CHARS] + "…"


def _columns(obj: Any) -> list[str]:
    return [c.key for c in inspect(obj).mapper.column_attrs]


def _redact(obj: Any, key: str, value: Any) -> Any:
    return (
        "***"
        if key in getattr(obj, "__audit_redact__", ()) and value is not None
        else _plain(value)
    )


def _identity(obj: Any) -> str:
    # Read the key off the instance: new objects have no identity key yet inside after_flush.
    key = inspect(obj).mapper.primary_key_from_instance(obj)
    return ",".join("" if v is None else str(v) for v in key)


def _after_flush(session: Session, _ctx: UOWTransaction) -> None:
    if session.info.get(BULK_KEY):
        return
    actor = actor_of(session)
    rows = []
    for obj in session.new:
        if getattr(obj, "__audit__", False):
            after = {k: _redact(obj, k, getattr(obj, k)) for k in _columns(obj)}
            rows.append(
                _row(actor, "create", obj.__tablename__, _identity(obj), {"after": after}, "")
            )
    for obj in session.dirty:
        if not getattr(obj, "__audit__", False) or not session.is_modified(obj):
            continue
        state = inspect(obj)
        before, after = {}, {}
        for key in _columns(obj):
            hist = state.attrs[key].history
            if hist.has_changes():
                before[key] = _redact(obj, key, hist.deleted[0] if hist.deleted else None)
                after[key] = _redact(obj, key, hist.added[0] if hist.added else None)
        if after:
            rows.append(
                _row(
                    actor,
                    "update",
                    obj.__tablename__,
                    _identity(obj),
                    {"before": before, "after": after},
                    "",
                )
            )
    for obj in session.deleted:
        if getattr(obj, "__audit__", False):
            before = {k: _redact(obj, k, getattr(obj, k)) for k in _columns(obj)}
            rows.append(
                _row(actor, "delete", obj.__tablename__, _identity(obj), {"before": before}, "")
            )
    if rows:
        session.connection().execute(insert(AuditEntry), rows)


def install() -> None:
    """Listen on every Session (idempotent)."""
    if not event.contains(Session, "after_flush", _after_flush):
        event.listen(Session, "after_flush", _after_flush)


# --- search and export ----------------------------------------------------------------------


def search_query(
    *,
    actor_kind: str | None = None,
    actor_id: str | None = None,
    action: str | None = None,
    entity: str | None = None,
    entity_id: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
) -> Select[AuditEntry]:
    query = select(AuditEntry)
    for column, value in (
        (AuditEntry.actor_kind, actor_kind),
        (AuditEntry.actor_id, actor_id),
        (AuditEntry.action, action),
        (AuditEntry.entity, entity),
        (AuditEntry.entity_id, entity_id),
    ):
        if value:
            query = query.where(column == value)
    if since:
        query = query.where(AuditEntry.at >= since)
    if until:
        query = query.where(AuditEntry.at < until)
    return query


def search(
    session: Session, limit: int, offset: int, **filters: Any
) -> tuple[list[AuditEntry], int]:
    from sqlalchemy import func, select

    query = search_query(**filters)
    total = session.scalar(select(func.count()).select_from(query.subquery())) or 0
    rows = session.scalars(query.order_by(AuditEntry.id.desc()).limit(limit).offset(offset)).all()
    return list(rows), total


CSV_COLUMNS = [
    "id",
    "at",
    "actor_kind",
    "actor_id",
    "actor_name",
    "action",
    "entity",
    "entity_id",
    "ip",
    "summary",
    "note",
]


def csv_rows(session: Session, **filters: Any) -> Iterator[list[str]]:
    import json

    query = search_query(**filters).order_by(AuditEntry.id)
    for entry in session.scalars(query.execution_options(yield_per=1000)):
        yield [
            str(entry.id),
            entry.at.isoformat(),
            entry.actor_kind,
            entry.actor_id,
            entry.actor_name,
            entry.action,
            entry.entity,
            entry.entity_id,
            entry.ip,
            json.dumps(entry.summary, ensure_ascii=False, sort_keys=True),
            entry.note,
        ]
