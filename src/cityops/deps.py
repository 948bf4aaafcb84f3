"""Request-scoped dependencies: the request owns the transaction."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy.orm import Session

from cityops.db import transaction

UNSAFE = frozenset({"POST", "PUT", "PATCH", "DELETE"})


def get_session(request: Request) -> Iterator[Session]:
    with transaction(request.app.state.session_factory) as session:
        if request.method in UNSAFE and request.app.state.engine.dialect.name == "sqlite":
            # A write request takes SQLite's write lock at BEGIN and waits its turn there
            # (busy timeout); a read transaction upgraded to a write later fails at once if
            # another writer committed in between ("database is locked").
            session.connection(execution_options={"sqlite_immediate": True})
        yield session


# scope="function": commit before the response is sent, so a failed commit is an error response
# rather than a success the client was already told about.
DbSession = Annotated[Session, Depends(get_session, scope="function")]
