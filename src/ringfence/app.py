"""The ASGI application: ``create_app(settings)``. Nothing runs at import time.

``uvicorn --factory ringfence.app:create_app`` serves it; ``ringfence serve`` does the same with
the process count and settings of its options.
"""

from __future__ import annotations

import gc
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.responses import Response
from starlette.routing import BaseRoute

from ringfence import __version__
from ringfence.api import (
    allocation,
    configuration,
    health,
    journal,
    onhand,
    reservations,
    tokens,
)
from ringfence.api.dependencies import ApiState
from ringfence.api.direct import DirectRoutes
from ringfence.api.errors import (
    install_error_handlers,
    invalid_from_validation,
    problem_response,
)
from ringfence.api.health import Metrics
from ringfence.api.openapi import install_openapi
from ringfence.bootstrap import Container, build
from ringfence.domain.errors import RingfenceError
from ringfence.services.coalescer import Coalescer
from ringfence.settings import Settings
from ringfence.web import error_page, install_web

__all__ = ["API_ROUTERS", "api_routes", "create_app"]

logger = logging.getLogger("ringfence")

DESCRIPTION = """
Inventory visibility and allocation. Post on-hand changes from ERPs and stores, query what is
available at any dimension level, and (soon) ring-fence stock for channels and customer groups.
Paths and bodies follow Dynamics 365 Inventory Visibility's public API. Send
`Authorization: Bearer <token>` (create one with `ringfence token create`).
"""


GC_THRESHOLDS = (50_000, 10, 10)
"""The cyclic collector's thresholds while serving (CPython's default is ``(700, 10, 10)``)."""

API_ROUTERS = (
    onhand.router,
    reservations.router,
    allocation.router,
    configuration.router,
    journal.router,
    tokens.router,
    health.router,
)
"""The API's routers, in the order they are included."""


def api_routes() -> list[BaseRoute]:
    """Every API route, in the order requests are matched against them."""
    return [route for router in API_ROUTERS for route in router.routes]


API_PREFIXES = ("/api/", "/healthz", "/readyz", "/metrics", "/openapi.json", "/docs")


def _answer_errors_in_kind(app: FastAPI) -> None:
    """Refusals answer API clients with problem details and browsers with a page."""

    async def refused(request: Request, error: Exception) -> Response:
        if isinstance(error, RequestValidationError):
            error = invalid_from_validation(error.errors())
        assert isinstance(error, RingfenceError)
        if request.url.path.startswith(API_PREFIXES):
            return problem_response(error, instance=request.url.path)
        return error_page(request, error)

    app.add_exception_handler(RingfenceError, refused)
    app.add_exception_handler(RequestValidationError, refused)


def create_app(settings: Settings | None = None, *, container: Container | None = None) -> FastAPI:
    """The application; it opens its database when it starts and closes it when it stops.

    Pass ``container`` to serve an already built one (it is then not closed on shutdown).
    """
    owned = container is None
    services = container or build(settings)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        # What exists at start-up (modules, routes, templates) lives as long as the process:
        # keep it out of the collector's full passes, which then stay short under load.
        gc.collect()
        gc.freeze()
        # A request allocates containers by the thousand (an answer of 20,000 rows, by the
        # hundred thousand) and frees nearly all of them by reference count; collecting every
        # 700 allocations took more than half the time of large answers (docs/performance.md).
        gc.set_threshold(*GC_THRESHOLDS)
        try:
            yield
        finally:
            if owned:
                await services.close()

    app = FastAPI(
        title="Ringfence",
        version=__version__,
        description=DESCRIPTION,
        lifespan=lifespan,
        docs_url="/docs",
        redoc_url=None,
    )
    app.state.api = ApiState(
        uow=services.uow,
        max_body_bytes=services.settings.max_body_bytes,
        coalescer=Coalescer() if services.settings.coalesce != "off" else None,
        coalesce_by_partition=services.settings.coalesce == "partition",
    )
    app.state.readiness = services.readiness
    metrics: Metrics = health.install_metrics(app)
    services.observe_batches(metrics.batch)
    install_error_handlers(app)
    for router in API_ROUTERS:
        app.include_router(router)
    install_web(app, services.uow)
    _answer_errors_in_kind(app)
    install_openapi(app)
    app.add_middleware(
        DirectRoutes,
        routes=api_routes(),
        exception_handlers=app.exception_handlers,
        dependency_overrides=app.dependency_overrides,
    )
    app.add_middleware(metrics.middleware)
    return app
