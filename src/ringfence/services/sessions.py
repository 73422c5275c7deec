"""Use cases of web sessions: sign in with a token, resume, sign out.

A browser signs in once with a token; it then holds a random session id in a cookie. Only a
digest of the session id is stored. Every request resumes the session and re-checks its token,
so revoking the token ends its sessions at once. Each session has its own CSRF token, which
every form must send back.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from ringfence.domain.access import Principal
from ringfence.domain.errors import Forbidden, Unauthenticated
from ringfence.services.ports import SessionRecord, UnitOfWorkFactory
from ringfence.services.tokens import authenticate, principal_of

__all__ = ["SESSION_LIFETIME", "Session", "check_csrf", "resume_session", "sign_in", "sign_out"]

SESSION_LIFETIME = timedelta(hours=8)


@dataclass(frozen=True, slots=True)
class Session:
    principal: Principal
    csrf: str
    expires_at: datetime


def _digest(session_id: str) -> str:
    return hashlib.sha256(session_id.encode()).hexdigest()


async def sign_in(uow: UnitOfWorkFactory, token: str) -> tuple[str, Session]:
    """A new session for a valid token: (the session id for the cookie, the session)."""
    principal = await authenticate(uow, token)
    session_id = secrets.token_urlsafe(32)
    now = datetime.now(UTC)
    record = SessionRecord(
        session_hash=_digest(session_id),
        token_id=principal.token_id or "",
        csrf=secrets.token_urlsafe(32),
        created_at=now,
        expires_at=now + SESSION_LIFETIME,
    )
    async with uow() as work:
        await work.sessions.add(record)
        await work.commit()
    return session_id, Session(principal, record.csrf, record.expires_at)


_EXPIRED = "your session has ended; sign in again"


async def resume_session(uow: UnitOfWorkFactory, session_id: str) -> Session:
    """The session of a cookie, while it lasts and its token is valid; else Unauthenticated."""
    async with uow(read_only=True) as work:
        record = await work.sessions.get(_digest(session_id))
        token = await work.tokens.get(record.token_id) if record is not None else None
    if (
        record is None
        or token is None
        or token.revoked_at is not None
        or record.expires_at <= datetime.now(UTC)
    ):
        raise Unauthenticated("session-expired", _EXPIRED)
    return Session(principal_of(token), record.csrf, record.expires_at)


async def sign_out(uow: UnitOfWorkFactory, session_id: str) -> None:
    async with uow() as work:
        await work.sessions.delete(_digest(session_id))
        await work.commit()


def check_csrf(session: Session, sent: str | None) -> None:
    """Refuse a form that does not carry the session's CSRF token."""
    if sent is None or not hmac.compare_digest(session.csrf, sent):
        raise Forbidden(
            "csrf-failed", "the form is out of date or was not sent by this site; reload the page"
        )
