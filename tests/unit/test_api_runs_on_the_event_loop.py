"""Every endpoint and dependency of the application is a coroutine function: FastAPI runs a
plain function in a worker thread, a thread hand-off per request (a consume under load paid 7%
of its CPU for one such dependency)."""

from __future__ import annotations

import inspect
from collections.abc import Iterator, Sequence
from pathlib import Path

from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute
from starlette.routing import BaseRoute

from ringfence.app import create_app
from ringfence.settings import Settings


def _api_routes(routes: Sequence[BaseRoute]) -> Iterator[APIRoute]:
    """The application's API routes, inside included routers too (however FastAPI keeps them)."""
    for route in routes:
        if isinstance(route, APIRoute):
            yield route
        included = getattr(route, "original_router", None)  # FastAPI >= 0.16x
        yield from _api_routes(getattr(included, "routes", None) or getattr(route, "routes", []))


def _calls(dependant: Dependant) -> Iterator[object]:
    if dependant.call is not None:
        yield dependant.call
    for dependency in dependant.dependencies:
        yield from _calls(dependency)


def test_no_endpoint_or_dependency_runs_in_a_worker_thread(tmp_path: Path) -> None:
    app = create_app(Settings(database_url=f"sqlite:///{tmp_path / 'unused.db'}"))
    routes = list(_api_routes(app.routes))
    assert len(routes) > 20

    blocking = {
        f"{route.path}: {getattr(call, '__qualname__', call)}"
        for route in routes
        for call in _calls(route.dependant)
        if not inspect.iscoroutinefunction(call)
    }

    assert blocking == set()
