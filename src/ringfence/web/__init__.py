"""The planner's web workbench: server-rendered pages over the same services as the API."""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.staticfiles import StaticFiles
from starlette.responses import Response

from ringfence.domain.errors import RingfenceError
from ringfence.services.ports import UnitOfWorkFactory
from ringfence.web import (
    configuration,
    dashboard,
    explorer,
    journal,
    reservations,
    signin,
    workbench,
)
from ringfence.web.common import HERE, SignInRequired, WebState, redirect_to_sign_in, render

__all__ = ["error_page", "install_web"]

ROUTERS = (
    signin.router,
    dashboard.router,
    workbench.router,
    explorer.router,
    reservations.router,
    configuration.router,
    journal.router,
)


def error_page(request: Request, error: RingfenceError) -> Response:
    """A refused page request, as a page (the API answers problem details instead)."""
    return render(request, "error.html", {"error": error}, status_code=error.status)


def install_web(app: FastAPI, uow: UnitOfWorkFactory) -> None:
    app.state.web = WebState(uow=uow)
    for router in ROUTERS:
        app.include_router(router)
    app.mount("/static", StaticFiles(directory=HERE / "static"), name="static")

    async def sign_in_required(request: Request, error: Exception) -> Response:
        assert isinstance(error, SignInRequired)
        return redirect_to_sign_in(error)

    app.add_exception_handler(SignInRequired, sign_in_required)
