"""Endpoints called directly, past FastAPI's routing and dependency resolution.

Most endpoints take only path parameters, the request and dependencies that need nothing but
the request (the principal, the unit of work). For them, FastAPI's work per request (its
middleware, matching the path against every route, solving dependencies) cost more CPU than
the endpoint itself: a fifth of a consume's (docs/performance.md). :class:`DirectRoutes` is a
plain ASGI middleware that recognizes such an endpoint's path and method, resolves those
parameters itself and calls the endpoint. Everything else, and anything a direct call would
decide differently (a path parameter FastAPI would refuse, a mounted root path), goes on to
FastAPI as before, and so does every request while a dependency is overridden.

The route table, the OpenAPI document and the exception handlers stay FastAPI's: the endpoints
are declared once, and an exception from a direct call is answered by the handler FastAPI would
have chosen.
"""

from __future__ import annotations

import inspect
import typing
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from annotated_types import MaxLen
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute
from starlette.types import ASGIApp, Receive, Scope, Send

__all__ = ["DirectRoutes", "direct_route"]

Handler = Callable[[Request, Any], Response | Awaitable[Response]]
"""An exception handler, as Starlette takes them (a plain function runs in a thread)."""


@dataclass(frozen=True)
class _PathParameter:
    name: str  # the endpoint's argument
    alias: str  # the name in the path template
    max_length: int | None


@dataclass(frozen=True)
class _Dependency:
    name: str | None  # None for a dependency called for its effect only
    call: Callable[[Request], Awaitable[Any]]


@dataclass(frozen=True)
class _Direct:
    """One endpoint FastAPI would call with nothing it needs to validate or convert."""

    route: APIRoute
    methods: frozenset[str]
    parameters: tuple[_PathParameter, ...]
    request_name: str | None
    dependencies: tuple[_Dependency, ...]

    def path_params(self, path: str) -> dict[str, str] | None:
        """The path's parameters if this route serves it and FastAPI would accept them."""
        match = self.route.path_regex.match(path)
        if match is None:
            return None
        values = match.groupdict()
        for parameter in self.parameters:
            limit = parameter.max_length
            if limit is not None and len(values[parameter.alias]) > limit:
                return None  # FastAPI answers this one (422, in its words)
        return values


def _request_only(dependant: Dependant) -> bool:
    """A dependency that is an ``async def`` of the request alone."""
    return (
        dependant.request_param_name is not None
        and not (dependant.path_params or dependant.dependencies)
        and not _takes_what_fastapi_resolves(dependant)
        and _is_coroutine_function(dependant.call)
    )


def _takes_what_fastapi_resolves(dependant: Dependant) -> bool:
    """Parameters read from the query, headers, cookies or body, or FastAPI's special ones."""
    return bool(
        dependant.query_params
        or dependant.header_params
        or dependant.cookie_params
        or dependant.body_params
        or dependant.websocket_param_name
        or dependant.http_connection_param_name
        or dependant.response_param_name
        or dependant.background_tasks_param_name
        or dependant.security_scopes_param_name
    )


def _is_coroutine_function(call: object) -> bool:
    return inspect.iscoroutinefunction(call) or inspect.iscoroutinefunction(
        getattr(call, "__call__", None)  # noqa: B004 - a callable instance's method
    )


def _answers_response(endpoint: Callable[..., Any]) -> bool:
    try:
        answer = typing.get_type_hints(endpoint).get("return")
    except (NameError, TypeError):
        return False
    return isinstance(answer, type) and issubclass(answer, Response)


def direct_route(route: BaseRoute) -> _Direct | None:
    """How to call ``route`` directly, or None if FastAPI must resolve its parameters."""
    if not isinstance(route, APIRoute) or not _is_coroutine_function(route.endpoint):
        return None
    if not _answers_response(route.endpoint):
        return None  # FastAPI shapes what it returns
    dependant = route.dependant
    if _takes_what_fastapi_resolves(dependant):
        return None
    if set(route.param_convertors) != {field.alias for field in dependant.path_params}:
        return None
    parameters = []
    for field in dependant.path_params:
        if field.field_info.annotation is not str:
            return None
        if route.param_convertors[field.alias].regex != "[^/]+":
            return None  # not the plain string convertor
        constraints = field.field_info.metadata
        if not all(isinstance(constraint, MaxLen) for constraint in constraints):
            return None  # only a length limit is checked here
        max_length = min((constraint.max_length for constraint in constraints), default=None)
        parameters.append(_PathParameter(field.name, field.alias, max_length))
    dependencies = []
    for sub in dependant.dependencies:
        if not _request_only(sub):
            return None
        assert sub.call is not None
        dependencies.append(_Dependency(sub.name, sub.call))
    return _Direct(
        route,
        frozenset(route.methods or ()),
        tuple(parameters),
        dependant.request_param_name,
        tuple(dependencies),
    )


class DirectRoutes:
    """ASGI middleware: serves the direct endpoints of ``routes``, passes the rest on to
    ``app``.

    ``routes`` are the API routers' routes in the order they are included (the first route
    matching a request takes it, as in Starlette); ``exception_handlers`` and
    ``dependency_overrides`` are the application's own: while any dependency is overridden,
    FastAPI serves every request.
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        routes: Sequence[BaseRoute],
        exception_handlers: Mapping[Any, Handler],
        dependency_overrides: Mapping[Any, Any],
        prefix: str = "/api/",
    ) -> None:
        self.app = app
        self.prefix = prefix
        self.overrides = dependency_overrides
        self.routes = [
            found
            for route in routes
            if (found := direct_route(route)) is not None
            and found.route.path.startswith(prefix)
            and _first_to_match(found.route, routes)
        ]
        # The routes that could serve a request, by its method and its path's last segment
        # (most templates end in a literal one): a request tries one or two patterns, not all.
        # Each list keeps the routes' order, so the first that matches is Starlette's choice.
        methods = {method for direct in self.routes for method in direct.methods}
        ends = {end for direct in self.routes if (end := _end(direct)) is not None}
        self.open_ended: dict[str, list[_Direct]] = {
            method: [d for d in self.routes if method in d.methods and _end(d) is None]
            for method in methods
        }
        self.candidates: dict[tuple[str, str], list[_Direct]] = {
            (method, end): [
                d for d in self.routes if method in d.methods and _end(d) in (end, None)
            ]
            for method in methods
            for end in ends
        }
        self.handlers = {
            kind: handler
            for kind, handler in exception_handlers.items()
            if isinstance(kind, type) and kind is not Exception
        }

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and not scope.get("root_path") and not self.overrides:
            path: str = scope["path"]
            if path.startswith(self.prefix):
                found = self.find(scope["method"], path)
                if found is not None:
                    await self._call(*found, scope, receive, send)
                    return
        await self.app(scope, receive, send)

    def find(self, method: str, path: str) -> tuple[_Direct, dict[str, str]] | None:
        """The direct route that serves ``method`` at ``path``, and the path's parameters; or
        None (FastAPI's to serve)."""
        candidates = self.candidates.get((method, _last_segment(path)))
        if candidates is None:
            candidates = self.open_ended.get(method, [])
        for direct in candidates:
            values = direct.path_params(path)
            if values is not None:
                return direct, values
        return None

    async def _call(
        self, direct: _Direct, values: dict[str, str], scope: Scope, receive: Receive, send: Send
    ) -> None:
        # What Starlette's router puts in the scope: the metrics label the route's template,
        # and the dependencies read the path parameters.
        scope["route"] = direct.route
        scope["endpoint"] = direct.route.endpoint
        scope["path_params"] = values
        request = Request(scope, receive)
        try:
            arguments: dict[str, Any] = {p.name: values[p.alias] for p in direct.parameters}
            if direct.request_name is not None:
                arguments[direct.request_name] = request
            for dependency in direct.dependencies:
                value = await dependency.call(request)
                if dependency.name is not None:
                    arguments[dependency.name] = value
            response: Response = await direct.route.endpoint(**arguments)
        except Exception as error:
            handler = self._handler(error)
            if handler is None:
                raise  # to the server-error handler, as from FastAPI
            answer = (
                await handler(request, error)
                if inspect.iscoroutinefunction(handler)
                else await run_in_threadpool(handler, request, error)
            )
            assert isinstance(answer, Response)
            response = answer
        await response(scope, receive, send)

    def _handler(self, error: Exception) -> Handler | None:
        for kind in type(error).__mro__:
            if kind in self.handlers:
                return self.handlers[kind]
        return None


def _last_segment(path: str) -> str:
    return path[path.rfind("/") + 1 :]


def _end(direct: _Direct) -> str | None:
    """The literal last segment of the route's template; None if it ends in a parameter."""
    last = _last_segment(direct.route.path_format)
    return None if "{" in last else last


def _first_to_match(route: APIRoute, routes: Sequence[BaseRoute]) -> bool:
    """No route before ``route`` could take its requests (Starlette takes the first match)."""
    sample = route.path_format
    for alias in route.param_convertors:
        sample = sample.replace("{" + alias + "}", "x")
    for earlier in routes:
        if earlier is route:
            return True
        methods = getattr(earlier, "methods", None)
        if methods is not None and not methods & route.methods:
            continue
        path_regex = getattr(earlier, "path_regex", None)
        if path_regex is None or path_regex.match(sample) is not None:
            return False  # a mount, a host, or a pattern that also matches
    return True
