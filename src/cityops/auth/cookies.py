"""The browser side of a session: opening one for a request and setting its cookie."""

from __future__ import annotations

from datetime import datetime

from fastapi import Request, Response
from sqlalchemy.orm import Session

from cityops.auth import sessions
from cityops.auth.deps import SESSION_COOKIE, client_ip
from cityops.auth.models import Account, AuthSession
from cityops.config import Settings


def set_session_cookie(response: Response, token: str, settings: Settings) -> None:
    response.set_cookie(
        SESSION_COOKIE,
        token,
        max_age=settings.session_absolute_hours * 3600,
        httponly=True,
        samesite="lax",
        secure=settings.cookie_secure,
        path="/",
    )


def open_session(
    session: Session, account: Account, request: Request, response: Response, now: datetime
) -> AuthSession:
    """A fresh session for this browser (ending the one it had), with its cookie on
    ``response``."""
    settings: Settings = request.app.state.settings
    token, record = sessions.start_session(
        session,
        account,
        settings,
        now,
        ip=client_ip(request),
        user_agent=request.headers.get("user-agent", ""),
        replaces=request.cookies.get(SESSION_COOKIE),
    )
    set_session_cookie(response, token, settings)
    return record
