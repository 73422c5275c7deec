"""Shaping operation results into HTTP answers, single and bulk."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import replace
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError
from starlette.requests import Request
from starlette.responses import Response

from ringfence.api.dependencies import coalescer_of, confirm_caller, read_body
from ringfence.api.errors import invalid_from_validation, problem_body, problem_response
from ringfence.api.jsonio import JsonResponse
from ringfence.domain.access import Principal
from ringfence.domain.errors import FieldIssue, Invalid, RingfenceError
from ringfence.domain.operations import Bucket, ItemResult

__all__ = [
    "MAX_BULK_ITEMS",
    "answer_bulk",
    "answer_single",
    "bulk_response",
    "parse_bulk",
    "parse_single",
    "reindex",
    "single_response",
]

MAX_BULK_ITEMS = 512
REPLAYED = "Idempotent-Replayed"

M = TypeVar("M", bound=BaseModel)
R = TypeVar("R")


Service = Callable[[Sequence[R]], Awaitable[list[ItemResult]]]
"""A service function with everything but its requests already given."""


async def answer_single(
    request: Request,
    model: type[M],
    convert: Callable[[M], R],
    service: Service[R],
    *,
    coalesce: tuple[str, Principal] | None = None,
) -> Response:
    """Parse one operation's body, run it, answer it (or its refusal, with its id).

    With ``coalesce`` (the operation's kind and caller), the operation joins the next batch of
    that kind and caller (see :mod:`ringfence.services.coalescer`). A body that parses as no
    operation still goes to the service, whose transaction confirms a caller taken without a
    read (:data:`~ringfence.api.dependencies.OperationWriterDep`) before the refusal is
    answered.
    """
    try:
        data = await read_body(request)
    except RingfenceError:
        if coalesce is not None:
            await confirm_caller(request, coalesce[1])
        raise
    items, refused = parse_single(data, model, convert)
    coalescer, by_partition = coalescer_of(request)
    if coalesce is not None and coalescer is not None and items:
        kind, principal = coalesce
        [item] = items
        # Operations of one kind by one caller run together (per product, if so configured):
        # the batch locks each product it touches (sorted) and commits once for all.
        # A batch runs as its queue's first caller: callers taken without a read (whose
        # batches confirm their token) never share a queue with callers that were read.
        key: tuple[object, ...] = (
            principal.environment_id,
            kind,
            principal.token_id or principal.name,
            principal.confirmed,
        )
        if by_partition:
            key = (*key, getattr(item, "organization_id", None), getattr(item, "product_id", None))
        return single_response(await coalescer.submit(key, item, service), request)
    results = await service(items)
    return single_response([*results, *refused][0], request)


async def answer_bulk(
    request: Request, model: type[M], convert: Callable[[M], R], service: Service[R]
) -> Response:
    """Parse a bulk body item by item, run the valid items, answer every item in its bucket."""
    items, positions, refused = parse_bulk(await read_body(request), model, convert)
    results = await service(items)
    return bulk_response([*reindex(results, positions), *refused])


def single_response(result: ItemResult, request: Request) -> Response:
    if result.error is not None:
        # Only refusals name the path (building the request's URL is not free).
        return problem_response(result.error, operation_id=result.id, instance=request.url.path)
    headers = {REPLAYED: "true"} if result.replayed else {}
    return JsonResponse(result.body, headers=headers)


def _item(result: ItemResult) -> dict[str, object]:
    if result.error is not None:
        body = problem_body(result.error, operation_id=result.id)
        body = {key: value for key, value in body.items() if key not in ("type", "title")}
    else:
        body = dict(result.body)
        if result.replayed:
            body["replayed"] = True
    return {"index": result.index, **body}


def bulk_response(results: Sequence[ItemResult]) -> Response:
    """200 when every item succeeded, 207 (Multi-Status) when any did not."""
    buckets: dict[str, list[dict[str, object]]] = {bucket.value: [] for bucket in Bucket}
    for result in sorted(results, key=lambda r: r.index):
        buckets[result.bucket.value].append(_item(result))
    ok = all(r.bucket in (Bucket.SUCCESS, Bucket.PARTIAL_SUCCESS) for r in results)
    return JsonResponse(buckets, status_code=200 if ok else 207)


def parse_bulk(
    data: Any, model: type[M], convert: Callable[[M], R]
) -> tuple[list[R], list[int], list[ItemResult]]:
    """Validate a bulk body item by item.

    Returns the converted valid items, their positions in the body, and a refusal for each
    invalid item. The body as a whole must be a list of 1 to ``MAX_BULK_ITEMS`` items, or
    nothing is applied.
    """
    if not isinstance(data, list) or not data:
        message = "a bulk body is a JSON array of 1 or more items"
        raise Invalid("invalid-request", message, (FieldIssue(("body",), message),))
    if len(data) > MAX_BULK_ITEMS:
        message = f"a bulk call takes at most {MAX_BULK_ITEMS} items; this one has {len(data)}"
        raise Invalid("bulk-limit-exceeded", message, (FieldIssue(("body",), message),))
    return _parse_items(data, model, convert)


def parse_single(
    data: Any, model: type[M], convert: Callable[[M], R]
) -> tuple[list[R], list[ItemResult]]:
    """Validate a single operation's body: ``([operation], [])`` or ``([], [its refusal])``.

    A refusal keeps the request's ``id`` when it has one, as IV's answers do.
    """
    valid, _, refused = _parse_items([data], model, convert)
    return valid, refused


def _parse_items(
    data: list[Any], model: type[M], convert: Callable[[M], R]
) -> tuple[list[R], list[int], list[ItemResult]]:
    valid: list[R] = []
    positions: list[int] = []
    refused: list[ItemResult] = []
    for index, raw in enumerate(data):
        operation_id = raw.get("id") if isinstance(raw, dict) else None
        try:
            valid.append(convert(model.model_validate(raw)))
            positions.append(index)
        except ValidationError as error:
            refused.append(
                ItemResult.refused(
                    index,
                    operation_id if isinstance(operation_id, str) else None,
                    invalid_from_validation(error.errors()),
                )
            )
    return valid, positions, refused


def reindex(results: Sequence[ItemResult], positions: Sequence[int]) -> list[ItemResult]:
    """Map results of the valid items back to their positions in the body."""
    return [replace(result, index=positions[result.index]) for result in results]
