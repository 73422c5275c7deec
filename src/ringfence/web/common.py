"""What every page shares: templates, the signed-in session, forms with CSRF, rendering."""

from __future__ import annotations

import re
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import quote

from fastapi import Depends, Request
from fastapi.templating import Jinja2Templates
from starlette.datastructures import FormData
from starlette.responses import HTMLResponse, RedirectResponse, Response

from ringfence.domain.access import Role
from ringfence.domain.configuration import Configuration
from ringfence.domain.dimensions import Dimensions
from ringfence.domain.errors import Unauthenticated
from ringfence.domain.ledger import GroupPath
from ringfence.domain.quantity import format_quantity
from ringfence.services.configuration import get_configuration
from ringfence.services.ports import UnitOfWorkFactory
from ringfence.services.sessions import Session, check_csrf, resume_session

__all__ = [
    "COOKIE",
    "SECURITY_HEADERS",
    "CurrentSession",
    "SignInRequired",
    "WebState",
    "configuration_of",
    "form",
    "new_operation_id",
    "render",
    "templates",
]

COOKIE = "ringfence_session"
HERE = Path(__file__).parent
templates = Jinja2Templates(directory=HERE / "templates")

SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
        "form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}


def _quantity(value: object) -> str:
    return format_quantity(value) if isinstance(value, Decimal) else str(value)


def _dimensions(value: Mapping[str, str] | Dimensions) -> str:
    return ", ".join(f"{name} {item}" for name, item in value.items()) or "—"


def _path(value: GroupPath | Mapping[str, str]) -> str:
    items = value.items if isinstance(value, GroupPath) else tuple(value.items())
    return (
        " \N{SINGLE RIGHT-POINTING ANGLE QUOTATION MARK} ".join(item for _, item in items)
        or "every path"
    )


def _humanize(name: str) -> str:
    """``customerGroup`` -> ``Customer group``, ``siteId`` -> ``Site``."""
    words = re.sub(r"(?<=[a-z0-9])(?=[A-Z])", " ", name.removesuffix("Id")).split()
    text = " ".join(words).lower()
    return text[:1].upper() + text[1:] if text else name


templates.env.filters["qty"] = _quantity
templates.env.filters["humanize"] = _humanize
templates.env.filters["dims"] = _dimensions
templates.env.filters["grouppath"] = _path
templates.env.filters["urlquote"] = lambda text: quote(str(text), safe="")
templates.env.globals["Role"] = Role


@dataclass(frozen=True)
class WebState:
    """What the pages need from the composition root (kept on ``app.state.web``)."""

    uow: UnitOfWorkFactory


class SignInRequired(Exception):
    """No valid session: the page answers with a redirect to sign in."""

    def __init__(self, next_url: str, reason: str | None = None) -> None:
        super().__init__(reason or "sign in")
        self.next_url = next_url
        self.reason = reason


def state(request: Request) -> WebState:
    web: WebState = request.app.state.web
    return web


async def current_session(request: Request) -> Session:
    session_id = request.cookies.get(COOKIE)
    target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    if not session_id:
        raise SignInRequired(target)
    try:
        return await resume_session(state(request).uow, session_id)
    except Unauthenticated as error:
        raise SignInRequired(target, error.detail) from None


CurrentSession = Annotated[Session, Depends(current_session)]


def redirect_to_sign_in(error: SignInRequired) -> Response:
    target = f"/signin?next={quote(error.next_url, safe='')}"
    if error.reason:
        target += "&expired=1"
    return RedirectResponse(target, status_code=303)


async def configuration_of(request: Request, session: Session) -> Configuration:
    """The signed-in environment's current configuration."""
    principal = session.principal
    current = await get_configuration(state(request).uow, principal, principal.environment_id)
    return current.configuration


async def form(request: Request, session: Session) -> FormData:
    """The posted form, after checking its CSRF token."""
    data = await request.form()
    sent = data.get("csrf")
    check_csrf(session, sent if isinstance(sent, str) else None)
    return data


def new_operation_id(kind: str) -> str:
    """An id for a form: resubmitting the same form (a double click, a retry) replays it."""
    return f"ui-{kind}-{secrets.token_hex(8)}"


def render(
    request: Request,
    template: str,
    context: Mapping[str, Any],
    *,
    session: Session | None = None,
    status_code: int = 200,
) -> HTMLResponse:
    principal = session.principal if session is not None else None
    page = {
        "session": session,
        "principal": principal,
        "can_write": principal is not None and principal.role.includes(Role.WRITER),
        "can_plan": principal is not None and principal.role.includes(Role.PLANNER),
        "is_admin": principal is not None and principal.role.includes(Role.ADMIN),
        "csrf": session.csrf if session is not None else "",
        "path": request.url.path,
        **context,
    }
    response = templates.TemplateResponse(request, template, page, status_code=status_code)
    response.headers.update(SECURITY_HEADERS)
    return response
