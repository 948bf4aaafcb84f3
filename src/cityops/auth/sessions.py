"""Browser sessions (cookie) and bearer tokens (mobile app)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from cityops.auth import audit
from cityops.auth.accounts import get_account, principal_for
from cityops.auth.models import Account, AuthSession, AuthToken
from cityops.auth.principal import Principal
from cityops.auth.tokens import digest, new_token
from cityops.config import Settings
from cityops.errors import Unauthenticated

TOUCH_EVERY = timedelta(seconds=60)  # write last_seen at most once a minute per session


def start_session(
    session: Session,
    account: Account,
    settings: Settings,
    now: datetime,
    *,
    ip: str,
    user_agent: str,
    replaces: str | None = None,
) -> tuple[str, AuthSession]:
    """A new session with a new token, always: an identifier the browser had before log-in is
    never promoted (no session fixation), and the old session, if any, is ended."""
    if replaces:
        end_session(session, replaces, now)
    token = new_token()
    record = AuthSession(
        token_hash=digest(token),
        account_id=account.id,
        csrf_token=new_token(24),
        created_at=now,
        last_seen_at=now,
        expires_at=now + timedelta(hours=settings.session_absolute_hours),
        ip=ip[:64],
        user_agent=user_agent[:300],
    )
    session.add(record)
    session.flush()
    return token, record


def session_principal(
    session: Session, token: str, settings: Settings, now: datetime
) -> tuple[Principal, str] | None:
    """The principal and CSRF token of a live session, or None (unknown, expired, revoked)."""
    record = session.scalar(select(AuthSession).where(AuthSession.token_hash == digest(token)))
    if record is None or record.revoked_at is not None or record.expires_at <= now:
        return None
    if record.last_seen_at + timedelta(minutes=settings.session_idle_minutes) <= now:
        record.revoked_at = now  # idle too long
        session.flush()
        return None
    account = get_account(session, record.account_id)
    if not account.active:
        return None
    if now - record.last_seen_at >= TOUCH_EVERY:
        record.last_seen_at = now
        session.flush()
    return principal_for(session, account, via="session", session_id=record.id), record.csrf_token


def end_session(session: Session, token: str, now: datetime) -> None:
    session.execute(
        update(AuthSession)
        .where(AuthSession.token_hash == digest(token), AuthSession.revoked_at.is_(None))
        .values(revoked_at=now)
    )


def end_everywhere(session: Session, account_id: int, now: datetime) -> dict[str, int]:
    """Log out everywhere: every session and every bearer token of the account."""
    s = session.execute(
        update(AuthSession)
        .where(AuthSession.account_id == account_id, AuthSession.revoked_at.is_(None))
        .values(revoked_at=now)
    )
    t = session.execute(
        update(AuthToken)
        .where(AuthToken.account_id == account_id, AuthToken.revoked_at.is_(None))
        .values(revoked_at=now)
    )
    counts = {
        "sessions": int(getattr(s, "rowcount", 0) or 0),
        "tokens": int(getattr(t, "rowcount", 0) or 0),
    }
    audit.record(session, "logout_everywhere", "accounts", account_id, counts)
    return counts


# --- bearer tokens --------------------------------------------------------------------------


@dataclass(frozen=True)
class TokenPair:
    access_token: str
    refresh_token: str
    expires_in: int
    refresh_expires_in: int


def issue_tokens(
    session: Session, account: Account, settings: Settings, now: datetime, family: str | None = None
) -> TokenPair:
    family = family or uuid.uuid4().hex
    access, refresh = new_token(), new_token()
    access_ttl = timedelta(minutes=settings.access_token_minutes)
    refresh_ttl = timedelta(days=settings.refresh_token_days)
    session.add_all(
        [
            AuthToken(
                token_hash=digest(access),
                kind="access",
                account_id=account.id,
                family=family,
                created_at=now,
                expires_at=now + access_ttl,
            ),
            AuthToken(
                token_hash=digest(refresh),
                kind="refresh",
                account_id=account.id,
                family=family,
                created_at=now,
                expires_at=now + refresh_ttl,
            ),
        ]
    )
    session.flush()
    return TokenPair(
        access, refresh, int(access_ttl.total_seconds()), int(refresh_ttl.total_seconds())
    )


def token_principal(session: Session, token: str, now: datetime) -> Principal | None:
    record = session.scalar(
        select(AuthToken).where(AuthToken.token_hash == digest(token), AuthToken.kind == "access")
    )
    if record is None or record.revoked_at is not None or record.expires_at <= now:
        return None
    account = get_account(session, record.account_id)
    if not account.active:
        return None
    return principal_for(session, account, via="token")


def refresh_tokens(
    session: Session, refresh_token: str, settings: Settings, now: datetime
) -> TokenPair:
    """Rotate: the refresh token is spent and a new pair issued in the same family. A spent token
    presented again means it leaked; the whole family is revoked."""
    record = session.scalar(
        select(AuthToken).where(
            AuthToken.token_hash == digest(refresh_token), AuthToken.kind == "refresh"
        )
    )
    if record is None or record.revoked_at is not None or record.expires_at <= now:
        raise Unauthenticated("刷新令牌无效或已过期 / refresh token invalid or expired")
    if record.used_at is not None:
        session.execute(
            update(AuthToken)
            .where(AuthToken.family == record.family, AuthToken.revoked_at.is_(None))
            .values(revoked_at=now)
        )
        audit.record(
            session, "token_reuse", "accounts", record.account_id, {"family": record.family}
        )
        raise Unauthenticated("刷新令牌已被使用 / refresh token already used; please log in again")
    account = get_account(session, record.account_id)
    if not account.active:
        raise Unauthenticated("账号已停用 / account disabled")
    record.used_at = now
    # The access tokens issued before this refresh stop working too.
    session.execute(
        update(AuthToken)
        .where(
            AuthToken.family == record.family,
            AuthToken.kind == "access",
            AuthToken.revoked_at.is_(None),
        )
        .values(revoked_at=now)
    )
    return issue_tokens(session, account, settings, now, family=record.family)


def revoke_token(session: Session, token: str, now: datetime) -> bool:
    """Revoke a token and its family (an app logging out drops both its tokens)."""
    record = session.scalar(select(AuthToken).where(AuthToken.token_hash == digest(token)))
    if record is None:
        return False
    session.execute(
        update(AuthToken)
        .where(AuthToken.family == record.family, AuthToken.revoked_at.is_(None))
        .values(revoked_at=now)
    )
    return True
