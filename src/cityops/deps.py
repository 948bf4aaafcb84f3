"""Request-scoped dependencies: the request owns the transaction."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy.orm import Session

from cityops.db import transaction


def get_session(request: Request) -> Iterator[Session]:
    with transaction(request.app.state.session_factory) as session:
        yield session


# scope="function": commit before the response is sent, so a failed commit is an error response
# rather than a success the client was already told about.
DbSession = Annotated[Session, Depends(get_session, scope="function")]
