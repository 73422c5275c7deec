"""Soft reservation routes: reserve, unreserve (single and bulk), list."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request
from starlette.responses import Response

from ringfence.api.dependencies import (
    EnvironmentId,
    OperationWriterDep,
    ReaderDep,
    UnitOfWorkDep,
    WriterDep,
)
from ringfence.api.errors import ERROR_RESPONSES
from ringfence.api.jsonio import JsonResponse
from ringfence.api.openapi import json_body
from ringfence.api.results import MAX_BULK_ITEMS, answer_bulk, answer_single
from ringfence.api.schemas import (
    BulkResult,
    OperationResult,
    ReservationPagePublic,
    ReserveItem,
    UnreserveItem,
)
from ringfence.domain.reservations import ReserveRequest, UnreserveRequest
from ringfence.services.ports import ReservationFilter
from ringfence.services.reservations import (
    MAX_PAGE_SIZE,
    list_reservations,
    reservation_record,
    reserve,
    unreserve,
)

__all__ = ["router"]

router = APIRouter(prefix="/api/environment/{environmentId}", tags=["reservations"])


def _reserve(model: ReserveItem) -> ReserveRequest:
    return ReserveRequest(
        id=model.id,
        organization_id=model.organization_id,
        product_id=model.product_id,
        dimensions=model.dimensions,
        quantity=model.quantity,
        quantity_data_source=model.quantity_data_source,
        modifier=model.modifier,
        check_availability=model.if_check_avail_for_reserv,
        dimension_data_source=model.dimension_data_source,
    )


def _unreserve(model: UnreserveItem) -> UnreserveRequest:
    return UnreserveRequest(
        id=model.id,
        organization_id=model.organization_id,
        reservation_id=model.reservation_id,
        quantity=model.offset_qty,
        product_id=model.product_id,
        dimensions=model.dimensions,
        dimension_data_source=model.dimension_data_source,
    )


@router.post(
    "/onhand/reserve",
    summary="Soft-reserve a quantity for an order line",
    description=(
        "With ifCheckAvailForReserv (the default), available-to-reserve must cover the quantity "
        "at the reservation's level and at every level above it (409 "
        "insufficient-available-to-reserve otherwise). Answers the new reservation's own id."
    ),
    response_model=OperationResult,
    responses=ERROR_RESPONSES,
    openapi_extra=json_body(ReserveItem),
)
async def post_reserve(
    environment_id: EnvironmentId,
    request: Request,
    principal: OperationWriterDep,
    uow: UnitOfWorkDep,
) -> Response:
    return await answer_single(
        request,
        ReserveItem,
        _reserve,
        lambda items: reserve(uow, principal, environment_id, items),
        coalesce=("reserve", principal),
    )


@router.post(
    "/onhand/reserve/bulk",
    summary=f"Soft-reserve up to {MAX_BULK_ITEMS} quantities",
    response_model=BulkResult,
    responses={207: {"model": BulkResult}, **ERROR_RESPONSES},
    openapi_extra=json_body(ReserveItem, array=True, max_items=MAX_BULK_ITEMS),
)
async def post_reserve_bulk(
    environment_id: EnvironmentId, request: Request, principal: WriterDep, uow: UnitOfWorkDep
) -> Response:
    return await answer_bulk(
        request, ReserveItem, _reserve, lambda items: reserve(uow, principal, environment_id, items)
    )


@router.post(
    "/onhand/unreserve",
    summary="Release (part of) a reservation by its id",
    description=(
        "Offsets the reservation by OffsetQty, up to what remains: asking more answers "
        "partialSuccess with the excess in totalInvalidOffsetQtyByReservId, and the "
        "reservation ends at zero, never below."
    ),
    response_model=OperationResult,
    responses=ERROR_RESPONSES,
    openapi_extra=json_body(UnreserveItem),
)
async def post_unreserve(
    environment_id: EnvironmentId,
    request: Request,
    principal: OperationWriterDep,
    uow: UnitOfWorkDep,
) -> Response:
    return await answer_single(
        request,
        UnreserveItem,
        _unreserve,
        lambda items: unreserve(uow, principal, environment_id, items),
        coalesce=("unreserve", principal),
    )


@router.post(
    "/onhand/unreserve/bulk",
    summary=f"Release up to {MAX_BULK_ITEMS} reservations",
    response_model=BulkResult,
    responses={207: {"model": BulkResult}, **ERROR_RESPONSES},
    openapi_extra=json_body(UnreserveItem, array=True, max_items=MAX_BULK_ITEMS),
)
async def post_unreserve_bulk(
    environment_id: EnvironmentId, request: Request, principal: WriterDep, uow: UnitOfWorkDep
) -> Response:
    return await answer_bulk(
        request,
        UnreserveItem,
        _unreserve,
        lambda items: unreserve(uow, principal, environment_id, items),
    )


@router.get(
    "/reservations",
    summary="Soft reservations, oldest first",
    response_model=ReservationPagePublic,
    responses=ERROR_RESPONSES,
)
async def get_reservations(
    environment_id: EnvironmentId,
    request: Request,
    principal: ReaderDep,
    uow: UnitOfWorkDep,
    organizationId: str | None = None,
    productId: str | None = None,
    open_only: Annotated[
        bool, Query(alias="open", description="only those with something remaining")
    ] = False,
    after: Annotated[str | None, Query(description="reservation id cursor from `next`")] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE_SIZE)] = 100,
) -> Response:
    page = await list_reservations(
        uow,
        principal,
        environment_id,
        ReservationFilter(
            organization_id=organizationId,
            product_id=productId,
            open_only=open_only,
            after=after,
            limit=limit,
        ),
    )
    next_url = (
        str(request.url.include_query_params(after=page.next_cursor))
        if page.next_cursor is not None
        else None
    )
    return JsonResponse(
        {"reservations": [reservation_record(r) for r in page.reservations], "next": next_url}
    )
