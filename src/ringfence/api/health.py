"""Liveness, readiness and Prometheus metrics."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable

from fastapi import APIRouter, FastAPI, Request
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
)
from starlette.responses import PlainTextResponse, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ringfence.api.jsonio import JsonResponse
from ringfence.services.ports import BatchTiming

__all__ = ["Metrics", "router"]

router = APIRouter(tags=["operations"])

Readiness = Callable[[], Awaitable[str | None]]
"""Checks the service can serve: None when ready, else the reason it is not."""


class Metrics:
    """The process's Prometheus metrics, and the ASGI middleware that records requests."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self._request_series: dict[tuple[str, str, int], tuple[Counter, Histogram]] = {}
        self.requests = Counter(
            "ringfence_http_requests",
            "HTTP requests answered, by route template and status",
            ["method", "route", "status"],
            registry=self.registry,
        )
        self.batch_operations = Histogram(
            "ringfence_batch_operations",
            "Operations decided together in one committed transaction (coalesced single calls, "
            "or a bulk call), by kind",
            ["kind"],
            registry=self.registry,
            buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256, 512),
        )
        self.batch_seconds = Histogram(
            "ringfence_batch_duration_seconds",
            "Time of a committed batch in each step: lock_and_read (locks taken, state read), "
            "decide (in process, under the locks), write_and_commit (which releases them)",
            ["kind", "step"],
            registry=self.registry,
            buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1),
        )
        self.latency = Histogram(
            "ringfence_http_request_duration_seconds",
            "Time to answer HTTP requests, by route template",
            ["method", "route"],
            registry=self.registry,
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
        )

    def _series(self, method: str, route: str, status: int) -> tuple[Counter, Histogram]:
        """The request counter's and the latency histogram's series for one answer's labels.

        Looked up once per label set (the client's method is one of the few the HTTP parser
        accepts, the route is a template, the status one of ours): the registry's own lookup
        checks and locks at every call.
        """
        key = (method, route, status)
        found = self._request_series.get(key)
        if found is None:
            found = self._request_series[key] = (
                self.requests.labels(method, route, str(status)),
                self.latency.labels(method, route),
            )
        return found

    def batch(self, timing: BatchTiming) -> None:
        """Record one committed batch (a :data:`~ringfence.services.ports.BatchObserver`)."""
        kind = timing.kind.value
        self.batch_operations.labels(kind).observe(timing.operations)
        if timing.in_one_statement:
            self.batch_seconds.labels(kind, "in_one_statement").observe(timing.write_and_commit)
            return
        for step, seconds in (
            ("lock_and_read", timing.lock_and_read),
            ("decide", timing.decide),
            ("write_and_commit", timing.write_and_commit),
        ):
            self.batch_seconds.labels(kind, step).observe(seconds)

    def middleware(self, app: ASGIApp) -> ASGIApp:
        async def record(scope: Scope, receive: Receive, send: Send) -> None:
            if scope["type"] != "http":
                await app(scope, receive, send)
                return
            started = time.perf_counter()
            status = 500

            async def send_status(message: Message) -> None:
                nonlocal status
                if message["type"] == "http.response.start":
                    status = message["status"]
                await send(message)

            try:
                await app(scope, receive, send_status)
            finally:
                route = getattr(scope.get("route"), "path", "unmatched")
                counted, timed = self._series(scope["method"], route, status)
                counted.inc()
                timed.observe(time.perf_counter() - started)

        return record


@router.get("/healthz", summary="Liveness: the process answers")
async def healthz() -> Response:
    return JsonResponse({"status": "ok"})


@router.get("/readyz", summary="Readiness: the database answers and its schema is current")
async def readyz(request: Request) -> Response:
    readiness: Readiness = request.app.state.readiness
    problem = await readiness()
    if problem is not None:
        return JsonResponse(
            {"status": "unavailable", "detail": problem},
            status_code=503,
            headers={"Retry-After": "2"},
        )
    return JsonResponse({"status": "ready"})


@router.get(
    "/metrics",
    summary="Prometheus metrics of this process",
    response_class=PlainTextResponse,
    responses={200: {"content": {CONTENT_TYPE_LATEST: {"schema": {"type": "string"}}}}},
)
async def metrics(request: Request) -> Response:
    registry: CollectorRegistry = request.app.state.metrics.registry
    return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)


def install_metrics(app: FastAPI) -> Metrics:
    collected = Metrics()
    app.state.metrics = collected
    return collected
