"""Sign in with a token, sign out."""

from __future__ import annotations

from urllib.parse import urlsplit

from fastapi import APIRouter, Request
from starlette.responses import RedirectResponse, Response

from ringfence.domain.errors import RingfenceError
from ringfence.services.sessions import SESSION_LIFETIME, sign_in, sign_out
from ringfence.web.common import COOKIE, SECURITY_HEADERS, CurrentSession, form, render, state

__all__ = ["router"]

router = APIRouter(include_in_schema=False)


def _safe_next(target: object) -> str:
    """Only a path on this site (never another host) may follow signing in."""
    if not isinstance(target, str) or not target.startswith("/") or target.startswith("//"):
        return "/dashboard"
    parts = urlsplit(target)
    return target if not parts.netloc and not parts.scheme else "/dashboard"


@router.get("/")
async def home(request: Request) -> Response:
    return RedirectResponse("/dashboard" if request.cookies.get(COOKIE) else "/signin", 303)


@router.get("/signin")
async def sign_in_page(request: Request, next: str = "/dashboard", expired: int = 0) -> Response:
    return render(request, "signin.html", {"next_url": _safe_next(next), "expired": expired})


@router.post("/signin")
async def sign_in_form(request: Request) -> Response:
    data = await request.form()
    token = data.get("token")
    next_url = _safe_next(data.get("next"))
    try:
        session_id, _ = await sign_in(state(request).uow, str(token or "").strip())
    except RingfenceError as error:
        return render(request, "signin.html", {"next_url": next_url, "error": error})
    response = RedirectResponse(next_url, status_code=303)
    response.set_cookie(
        COOKIE,
        session_id,
        max_age=int(SESSION_LIFETIME.total_seconds()),
        httponly=True,
        secure=request.url.scheme == "https",
        samesite="lax",
        path="/",
    )
    response.headers.update(SECURITY_HEADERS)
    return response


@router.post("/signout")
async def sign_out_form(request: Request, session: CurrentSession) -> Response:
    await form(request, session)
    session_id = request.cookies.get(COOKIE)
    if session_id:
        await sign_out(state(request).uow, session_id)
    response = RedirectResponse("/signin", status_code=303)
    response.delete_cookie(COOKIE, path="/")
    return response
