"""The one place that turns errors into HTTP answers: RFC 9457 problem details.

Every problem carries a stable ``code``, a ``detail`` a person can act on and Inventory
Visibility's fields (``id``, ``processingStatus``, ``message``, ``statusCode``), so IV clients
and HTTP clients read it alike. Nothing a client sends is answered with a 500: unexpected
exceptions are logged and answered with a generic 500 that reveals nothing.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from http import HTTPStatus
from typing import Any

from fastapi import FastAPI
from fastapi.exceptions import RequestValidationError
from pydantic import ValidationError
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response

from ringfence.api.jsonio import JsonResponse
from ringfence.api.schemas import Problem
from ringfence.domain.errors import (
    FieldIssue,
    Invalid,
    RingfenceError,
    Unauthenticated,
    Unavailable,
)
from ringfence.domain.operations import bucket_for

__all__ = [
    "ERROR_RESPONSES",
    "PROBLEM_JSON",
    "install_error_handlers",
    "invalid_from_validation",
    "problem_body",
    "problem_response",
    "status_of",
]

logger = logging.getLogger("ringfence.api")

PROBLEM_JSON = "application/problem+json"

ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    status: {"model": Problem, "content": {PROBLEM_JSON: {}}}
    for status in (401, 403, 404, 409, 422, 503)
}
"""OpenAPI ``responses`` for the problems any API route may answer."""


def status_of(error: RingfenceError) -> int:
    return error.status


def problem_body(
    error: RingfenceError, *, operation_id: str | None = None, instance: str | None = None
) -> dict[str, object]:
    status = status_of(error)
    body: dict[str, object] = {
        "type": f"/problems/{error.code}",
        "title": error.title,
        "status": status,
        "detail": error.detail,
        "code": error.code,
    }
    if instance is not None:
        body["instance"] = instance
    if error.issues:
        body["errors"] = [
            {"location": issue.path, "message": issue.message} for issue in error.issues
        ]
    body.update(error.extra)
    # Inventory Visibility's fields, for its clients.
    body["id"] = operation_id
    body["processingStatus"] = bucket_for(error).value
    body["message"] = error.detail
    body["statusCode"] = status
    return body


def problem_response(
    error: RingfenceError,
    *,
    operation_id: str | None = None,
    instance: str | None = None,
    headers: Mapping[str, str] | None = None,
) -> Response:
    all_headers = dict(headers or {})
    if isinstance(error, Unauthenticated):
        all_headers["WWW-Authenticate"] = 'Bearer realm="ringfence"'
    if isinstance(error, Unavailable):
        all_headers["Retry-After"] = str(error.extra.get("retryAfter", 2))
    return JsonResponse(
        problem_body(error, operation_id=operation_id, instance=instance),
        status_code=status_of(error),
        headers=all_headers,
        media_type=PROBLEM_JSON,
    )


def _location(loc: Sequence[Any]) -> tuple[str | int, ...]:
    return tuple(part if isinstance(part, int) else str(part) for part in loc if part != "body")


def invalid_from_validation(errors: Sequence[Mapping[str, Any]]) -> Invalid:
    """A pydantic/FastAPI validation failure as one :class:`Invalid` listing every field."""
    issues = tuple(FieldIssue(_location(e.get("loc", ())), str(e.get("msg", ""))) for e in errors)
    summary = "; ".join(f"{issue.path or 'body'}: {issue.message}" for issue in issues[:5])
    more = f" (and {len(issues) - 5} more)" if len(issues) > 5 else ""
    return Invalid("invalid-request", f"the request is not valid: {summary}{more}", issues)


_HTTP_CODES = {404: "not-found", 405: "method-not-allowed", 413: "payload-too-large"}


CLIENT_CLOSED_REQUEST = 499
"""The status recorded for a request whose client hung up before it was read."""


def install_error_handlers(app: FastAPI) -> None:
    async def ringfence_error(request: Request, error: Exception) -> Response:
        assert isinstance(error, RingfenceError)
        return problem_response(error, instance=request.url.path)

    async def request_validation(request: Request, error: Exception) -> Response:
        assert isinstance(error, RequestValidationError | ValidationError)
        return problem_response(invalid_from_validation(error.errors()), instance=request.url.path)

    async def http_error(request: Request, error: Exception) -> Response:
        assert isinstance(error, HTTPException)
        status = error.status_code
        code = _HTTP_CODES.get(status, "http-error")
        return JsonResponse(
            {
                "type": f"/problems/{code}",
                "title": HTTPStatus(status).phrase,
                "status": status,
                "detail": str(error.detail),
                "code": code,
                "instance": request.url.path,
                "processingStatus": "notFound" if status == 404 else "failure",
                "message": str(error.detail),
                "statusCode": status,
            },
            status_code=status,
            headers=error.headers,
            media_type=PROBLEM_JSON,
        )

    async def unexpected(request: Request, error: Exception) -> Response:
        logger.exception("unexpected error on %s %s", request.method, request.url.path)
        return JsonResponse(
            {
                "type": "/problems/internal-error",
                "title": "Internal error",
                "status": 500,
                "detail": "the server failed unexpectedly; the error has been logged",
                "code": "internal-error",
                "processingStatus": "failure",
                "statusCode": 500,
            },
            status_code=500,
            media_type=PROBLEM_JSON,
        )

    async def client_gone(request: Request, error: Exception) -> Response:
        # The client hung up before its request was read: nobody reads this answer, and the
        # metrics count it apart from server errors (nginx's 499), with nothing logged.
        return Response(status_code=CLIENT_CLOSED_REQUEST)

    app.add_exception_handler(ClientDisconnect, client_gone)
    app.add_exception_handler(RingfenceError, ringfence_error)
    app.add_exception_handler(RequestValidationError, request_validation)
    app.add_exception_handler(ValidationError, request_validation)
    app.add_exception_handler(HTTPException, http_error)
    app.add_exception_handler(Exception, unexpected)
