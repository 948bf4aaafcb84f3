"""Request-scoped dependencies: the request owns the transaction."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Annotated, TypeVar

from fastapi import Depends, Request
from sqlalchemy.orm import Session

from cityops.db import transaction

UNSAFE = frozenset({"POST", "PUT", "PATCH", "DELETE"})
READS_FIRST = "cityops_reads_first"  # route attribute, set by @reads_first
LATER = "cityops.writes_later"  # request scope: writes held back until begin_writing()

F = TypeVar("F", bound=Callable[..., object])


def reads_first(endpoint: F) -> F:
    """Marks a write route that reads first and writes last, and calls ``begin_writing()`` in
    between. On SQLite it then holds the database's single write lock for the writing alone:
    batch ingestion checks a batch against the device directory — as long as storing it
    takes — while another server process stores its own."""
    setattr(endpoint, READS_FIRST, True)
    return endpoint


def is_reads_first(request: Request) -> bool:
    return getattr(request.scope.get("endpoint"), READS_FIRST, False)


def get_session(request: Request) -> Iterator[Session]:
    with transaction(request.app.state.session_factory) as session:
        if (
            request.method in UNSAFE
            and request.app.state.engine.dialect.name == "sqlite"
            and not is_reads_first(request)
        ):
            # A write request takes SQLite's write lock at BEGIN and waits its turn there
            # (busy timeout); a read transaction upgraded to a write later fails at once if
            # another writer committed in between ("database is locked").
            session.connection(execution_options={"sqlite_immediate": True})
        yield session


def write_later(request: Request, write: Callable[[Session], object]) -> bool:
    """In a ``reads_first`` route, hold a write back until ``begin_writing()`` (True);
    elsewhere do nothing (False: the caller writes now)."""
    if not is_reads_first(request):
        return False
    request.scope.setdefault(LATER, []).append(write)
    return True


def begin_writing(request: Request, session: Session) -> None:
    """The turn of a ``reads_first`` route from reading to writing. On SQLite the reading
    transaction ends (committing nothing, or a person's session touched by authentication)
    and a writing one begins, in turn with every other writer; the writes held back
    (``write_later``) come first."""
    if session.get_bind().dialect.name == "sqlite":
        session.commit()
        session.connection(execution_options={"sqlite_immediate": True})
    for write in request.scope.pop(LATER, []):
        write(session)


# scope="function": commit before the response is sent, so a failed commit is an error response
# rather than a success the client was already told about.
DbSession = Annotated[Session, Depends(get_session, scope="function")]
