"""Endpoints called directly (ringfence.api.direct) answer exactly as through FastAPI.

On SQLite and PostgreSQL. The reference is the same application with a dependency overridden
(by itself): then FastAPI resolves every request, as it did before direct calls existed.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import pytest
from fastapi import APIRouter, Request
from fastapi.routing import APIRoute
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from ringfence.api.dependencies import EnvironmentId, UnitOfWorkDep, WriterDep, get_uow
from ringfence.api.direct import DirectRoutes, direct_route
from ringfence.app import api_routes, create_app
from ringfence.bootstrap import Container
from tests.conftest import TokenFactory
from tests.integration.support import new_id

BASE = "http://ringfence.test"
RED = {"siteId": "1", "locationId": "11", "colorId": "red"}

HOT = {
    ("POST", "/api/environment/{environmentId}/allocation/consume"),
    ("POST", "/api/environment/{environmentId}/allocation/allocate"),
    ("POST", "/api/environment/{environmentId}/allocation/reallocate"),
    ("POST", "/api/environment/{environmentId}/allocation/unallocate"),
    ("POST", "/api/environment/{environmentId}/allocation/query"),
    ("POST", "/api/environment/{environmentId}/onhand"),
    ("POST", "/api/environment/{environmentId}/onhand/bulk"),
    ("POST", "/api/environment/{environmentId}/onhand/indexquery"),
    ("POST", "/api/environment/{environmentId}/onhand/exactquery"),
    ("POST", "/api/environment/{environmentId}/onhand/reserve"),
    ("POST", "/api/environment/{environmentId}/onhand/unreserve"),
}


def _served(routes: DirectRoutes) -> set[tuple[str, str]]:
    return {(method, d.route.path) for d in routes.routes for method in d.methods}


async def _unreachable(scope: Scope, receive: Receive, send: Send) -> None:
    raise AssertionError(f"{scope['path']} went past the direct routes")


def test_the_operations_and_queries_are_called_directly() -> None:
    routes = DirectRoutes(
        _unreachable, routes=api_routes(), exception_handlers={}, dependency_overrides={}
    )
    served = _served(routes)
    assert served >= HOT
    # Query parameters and typed path parameters stay FastAPI's to validate.
    assert ("GET", "/api/environment/{environmentId}/journal") not in served
    assert ("GET", "/api/environment/{environmentId}/reservations") not in served
    assert (
        "GET",
        "/api/environment/{environmentId}/configuration/versions/{version}",
    ) not in served
    # So do the body-model endpoint and everything outside /api/.
    assert ("PUT", "/api/environment/{environmentId}/configuration") not in served
    assert not any(path.startswith("/healthz") for _, path in served)


def test_a_route_another_route_would_take_first_is_left_to_fastapi() -> None:
    router = APIRouter(prefix="/api/environment/{environmentId}")

    @router.post("/things/{name}")
    async def named(
        environment_id: EnvironmentId, name: str, principal: WriterDep, uow: UnitOfWorkDep
    ) -> Response:
        raise AssertionError

    @router.post("/things/special")
    async def special(
        environment_id: EnvironmentId, request: Request, principal: WriterDep, uow: UnitOfWorkDep
    ) -> Response:
        raise AssertionError

    @router.post("/other")
    async def other(environment_id: EnvironmentId, limit: int = 10) -> Response:
        raise AssertionError  # a query parameter: FastAPI's

    @router.post("/shaped")
    async def shaped(environment_id: EnvironmentId) -> dict[str, str]:
        raise AssertionError  # FastAPI shapes what it returns

    routes = DirectRoutes(
        _unreachable, routes=router.routes, exception_handlers={}, dependency_overrides={}
    )
    assert _served(routes) == {("POST", "/api/environment/{environmentId}/things/{name}")}
    assert [direct_route(route) is not None for route in router.routes] == [
        True,
        True,
        False,
        False,
    ]


@pytest.fixture
async def apps(container: Container) -> AsyncIterator[Callable[[bool], httpx.AsyncClient]]:
    """``clients(direct)``: HTTP clients of two applications on the test's database, one
    calling endpoints directly, one resolving every request through FastAPI."""
    direct_app = create_app(container=container)
    fastapi_app = create_app(container=container)
    fastapi_app.dependency_overrides[get_uow] = get_uow
    clients = {
        direct: httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=BASE)
        for direct, app in ((True, direct_app), (False, fastapi_app))
    }
    yield clients.__getitem__
    for client in clients.values():
        await client.aclose()


def _consume(quantity: object = 1, **extra: object) -> dict[str, Any]:
    return {
        "organizationId": "usmf",
        "productId": "T-shirt",
        "dimensions": RED,
        "groups": {"channel": "Web"},
        "quantity": quantity,
        "physicalMeasures": {"pos": {"outbound": "Addition"}},
        **extra,
    }


def _answer(response: httpx.Response) -> tuple[int, str, Any, str | None]:
    """What must not depend on the path taken (operation ids set aside)."""
    body = json.loads(response.content) if response.content else None
    if isinstance(body, dict):
        body.pop("id", None)
    if isinstance(body, list):
        for item in body:
            if isinstance(item, dict):
                item.pop("id", None)
    return (
        response.status_code,
        response.headers.get("content-type", ""),
        body,
        response.headers.get("www-authenticate"),
    )


@pytest.mark.asyncio
async def test_direct_and_fastapi_answers_are_the_same(
    apps: Callable[[bool], httpx.AsyncClient], environment_id: str, auth: TokenFactory
) -> None:
    writer = await auth("writer")
    reader = await auth("reader")
    planner = await auth("planner")
    admin = await auth("admin")
    elsewhere = await auth("writer", environment=f"other-{environment_id}")
    api = f"/api/environment/{environment_id}"
    consume = f"{api}/allocation/consume"
    too_long = "e" * 65

    def calls() -> list[tuple[str, str, dict[str, Any]]]:
        """Each call made once per application (new operation ids each time)."""
        return [
            ("POST", consume, {"json": _consume(id=new_id())}),  # no token
            ("POST", consume, {"json": _consume(), "headers": {"Authorization": "Basic x"}}),
            ("POST", consume, {"json": _consume(), "headers": {"Authorization": "Bearer no"}}),
            ("POST", consume, {"json": _consume(id=new_id()), "headers": reader}),
            ("POST", consume, {"json": _consume(id=new_id()), "headers": elsewhere}),
            ("POST", f"/api/environment/{too_long}/allocation/consume", {"headers": writer}),
            ("POST", consume, {"content": b"{not json", "headers": writer}),
            ("POST", consume, {"content": b"", "headers": writer}),
            ("POST", consume, {"content": b" " * (1024 * 1024 + 1), "headers": writer}),
            ("POST", consume, {"json": _consume("x", id=new_id()), "headers": writer}),
            ("POST", consume, {"json": [_consume(id=new_id())], "headers": writer}),
            ("POST", consume, {"json": _consume(id=new_id()), "headers": writer}),  # 409
            ("POST", f"{api}/allocation/allocate", {"json": _allocate(), "headers": writer}),
            ("GET", consume, {"headers": writer}),  # 405
            ("POST", f"{api}/allocation/consume/", {"headers": writer}),
            ("POST", f"{api}/onhand/indexquery", {"json": _query(), "headers": reader}),
            ("POST", f"{api}/allocation/query", {"json": _tree(), "headers": reader}),
            ("POST", f"{api}/onhand", {"json": _receipt(), "headers": writer}),
            ("POST", f"{api}/onhand", {"json": _receipt(), "headers": reader}),
            ("POST", f"{api}/allocation/allocate", {"json": _allocate(), "headers": planner}),
            ("POST", consume, {"json": _consume(id=new_id()), "headers": writer}),  # 200
            ("DELETE", f"{api}/tokens/nobody", {"headers": admin}),
        ]

    for direct_call, fastapi_call in zip(calls(), calls(), strict=True):
        answers = []
        for direct, (method, url, options) in ((True, direct_call), (False, fastapi_call)):
            response = await apps(direct).request(method, url, **options)
            answers.append(_answer(response))
        assert answers[0] == answers[1], (direct_call[:2], answers)
        assert answers[0][0] < 500, answers[0]


def _allocate() -> dict[str, Any]:
    return {
        "id": new_id(),
        "organizationId": "usmf",
        "productId": "T-shirt",
        "dimensions": RED,
        "groups": {"channel": "Web"},
        "quantity": 2,
    }


def _receipt() -> dict[str, Any]:
    return {
        "id": new_id(),
        "organizationId": "usmf",
        "productId": "T-shirt",
        "dimensions": RED,
        "quantities": {"pos": {"inbound": 5}},
    }


def _query() -> dict[str, Any]:
    return {"filters": {"organizationId": ["usmf"], "productId": ["T-shirt"]}}


def _tree() -> dict[str, Any]:
    return {"organizationId": "usmf", "productId": "T-shirt", "dimensions": RED, "groups": {}}


@pytest.mark.asyncio
async def test_only_what_fastapi_must_resolve_goes_on_to_it(
    container: Container, environment_id: str, auth: TokenFactory
) -> None:
    app = create_app(container=container)
    reached: list[str] = []

    async def fastapi(scope: Scope, receive: Receive, send: Send) -> None:
        reached.append(scope["path"])
        await app(scope, receive, send)

    routes = DirectRoutes(
        fastapi,
        routes=api_routes(),
        exception_handlers=app.exception_handlers,
        dependency_overrides=app.dependency_overrides,
    )

    async def served(scope: Scope, receive: Receive, send: Send) -> None:
        scope["app"] = app  # as Starlette sets it before its middleware
        await routes(scope, receive, send)

    writer = await auth("writer")
    api = f"/api/environment/{environment_id}"
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=served), base_url=BASE
    ) as client:
        ok = await client.post(f"{api}/onhand", json=_receipt(), headers=writer)
        refused = await client.post(f"{api}/allocation/consume", json=_consume(id=new_id()))
        malformed = await client.post(f"{api}/allocation/consume", content=b"[", headers=writer)
        assert (ok.status_code, refused.status_code, malformed.status_code) == (200, 401, 422)
        assert reached == []

        journal = await client.get(f"{api}/journal", headers=writer)
        too_long = await client.post(f"/api/environment/{'e' * 65}/onhand", headers=writer)
        assert (journal.status_code, too_long.status_code) == (200, 403)
        assert reached == [f"{api}/journal", f"/api/environment/{'e' * 65}/onhand"]

        reached.clear()
        app.dependency_overrides[get_uow] = get_uow
        again = await client.post(f"{api}/onhand", json=_receipt(), headers=writer)
        assert again.status_code == 200
        assert reached == [f"{api}/onhand"]


@pytest.mark.asyncio
async def test_direct_calls_are_counted_by_route_template(
    apps: Callable[[bool], httpx.AsyncClient], environment_id: str, auth: TokenFactory
) -> None:
    client = apps(True)
    writer = await auth("writer")
    for _ in range(3):
        response = await client.post(
            f"/api/environment/{environment_id}/allocation/consume",
            json=_consume(id=new_id()),
            headers=writer,
        )
        assert response.status_code == 409
    metrics = (await client.get("/metrics")).text
    template = "/api/environment/{environmentId}/allocation/consume"
    assert (
        f'ringfence_http_requests_total{{method="POST",route="{template}",status="409"}} 3.0'
        in metrics
    )


def _first_match(routes: DirectRoutes, method: str, path: str) -> str | None:
    """What trying every direct route in order finds (as Starlette would among them)."""
    for direct in routes.routes:
        if method in direct.methods and direct.path_params(path) is not None:
            return direct.route.path
    return None


def test_a_request_finds_the_route_trying_every_route_in_order_would() -> None:
    router = APIRouter(prefix="/api/environment/{environmentId}")

    async def endpoint(environment_id: EnvironmentId, request: Request) -> Response:
        raise AssertionError

    async def named(environment_id: EnvironmentId, name: str, request: Request) -> Response:
        raise AssertionError

    for path in ("/a/{name}", "/b/c", "/a/x/{name}", "/d/{name}/c", "/b/{name}/e", "/e"):
        router.add_api_route(path, named if "{" in path else endpoint, methods=["POST"])
    router.add_api_route("/b/c", endpoint, methods=["GET"])
    assert all(direct_route(route) is not None for route in router.routes)
    served = [*api_routes(), *router.routes]
    routes = DirectRoutes(
        _unreachable, routes=served, exception_handlers={}, dependency_overrides={}
    )
    samples = {
        route.path_format.replace("{environmentId}", "env").replace("{name}", "n")
        for route in served
        if isinstance(route, APIRoute)
    } | {
        f"/api/environment/env/{rest}"
        # Open-ended routes serve paths ending in another route's literal segment.
        for rest in ("a/c", "a/e", "a/x/c", "a/x/e", "d/e/c", "b/x/e", "nowhere", "c")
    }
    for method in ("GET", "POST", "PUT", "DELETE"):
        for path in samples:
            found = routes.find(method, path)
            assert (found[0].route.path if found else None) == _first_match(routes, method, path), (
                method,
                path,
            )
    found = routes.find("POST", "/api/environment/env/d/n/c")
    assert found is not None
    assert (found[0].route.path, found[1]) == (
        "/api/environment/{environmentId}/d/{name}/c",
        {"environmentId": "env", "name": "n"},
    )
