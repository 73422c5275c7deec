"""Allocation routes: allocate, unallocate, reallocate, consume, query (IV's paths and bodies)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from starlette.responses import Response

from ringfence.api.dependencies import (
    EnvironmentId,
    OperationPlannerDep,
    OperationWriterDep,
    ReaderDep,
    UnitOfWorkDep,
    parse_body,
    read_body,
)
from ringfence.api.errors import ERROR_RESPONSES
from ringfence.api.jsonio import JsonResponse
from ringfence.api.openapi import json_body
from ringfence.api.results import answer_single
from ringfence.api.schemas import (
    AllocationItem,
    AllocationQueryBody,
    AllocationQueryPublic,
    ConsumeItem,
    OperationResult,
    ReallocateItem,
)
from ringfence.domain.allocation import AllocationRequest, ConsumeRequest, ReallocateRequest
from ringfence.services.allocation import (
    AllocationQuery,
    allocate,
    consume,
    query_allocations,
    reallocate,
    unallocate,
)

__all__ = ["router"]

router = APIRouter(prefix="/api/environment/{environmentId}/allocation", tags=["allocation"])


def _fields(model: AllocationItem) -> dict[str, Any]:
    return {
        "id": model.id,
        "organization_id": model.organization_id,
        "product_id": model.product_id,
        "dimensions": model.dimensions,
        "groups": model.path,
        "quantity": model.quantity,
        "dimension_data_source": model.dimension_data_source,
    }


def _allocation(model: AllocationItem) -> AllocationRequest:
    return AllocationRequest(**_fields(model))


def _reallocation(model: ReallocateItem) -> ReallocateRequest:
    return ReallocateRequest(**_fields(model), source_groups=model.source_groups)


def _consumption(model: ConsumeItem) -> ConsumeRequest:
    return ConsumeRequest(**_fields(model), physical_measures=model.physical_measures)


@router.post(
    "/allocate",
    summary="Ring-fence a quantity for a group path (planner)",
    description=(
        "Available-to-allocate must cover the quantity at the request's dimensions and at every "
        "level above them (409 insufficient-available-to-allocate otherwise, with the level that "
        "bound and what was available there)."
    ),
    response_model=OperationResult,
    responses=ERROR_RESPONSES,
    openapi_extra=json_body(AllocationItem),
)
async def post_allocate(
    environment_id: EnvironmentId,
    request: Request,
    principal: OperationPlannerDep,
    uow: UnitOfWorkDep,
) -> Response:
    return await answer_single(
        request,
        AllocationItem,
        _allocation,
        lambda items: allocate(uow, principal, environment_id, items),
        coalesce=("allocate", principal),
    )


@router.post(
    "/unallocate",
    summary="Return an allocated quantity to the pool (planner)",
    response_model=OperationResult,
    responses=ERROR_RESPONSES,
    openapi_extra=json_body(AllocationItem),
)
async def post_unallocate(
    environment_id: EnvironmentId,
    request: Request,
    principal: OperationPlannerDep,
    uow: UnitOfWorkDep,
) -> Response:
    return await answer_single(
        request,
        AllocationItem,
        _allocation,
        lambda items: unallocate(uow, principal, environment_id, items),
        coalesce=("unallocate", principal),
    )


@router.post(
    "/reallocate",
    summary="Move an allocated quantity from one group path to another (planner)",
    description="Atomic; any two paths (a parent and its child, siblings, ...); the pool is "
    "unchanged.",
    response_model=OperationResult,
    responses=ERROR_RESPONSES,
    openapi_extra=json_body(ReallocateItem),
)
async def post_reallocate(
    environment_id: EnvironmentId,
    request: Request,
    principal: OperationPlannerDep,
    uow: UnitOfWorkDep,
) -> Response:
    return await answer_single(
        request,
        ReallocateItem,
        _reallocation,
        lambda items: reallocate(uow, principal, environment_id, items),
        coalesce=("reallocate", principal),
    )


@router.post(
    "/consume",
    summary="Consume an allocation (writer); never more than the path holds",
    description=(
        "Each physicalMeasures entry becomes an on-hand change of +quantity (Addition) or "
        "-quantity (Subtraction); together they must leave available-to-allocate unchanged "
        "(422 consume-not-pool-neutral otherwise, saying which modifier does). Consuming into "
        'the reservation measure ({"@iv": {"@softreserved": "Addition"}}) makes a soft '
        "reservation and answers its reservationId."
    ),
    response_model=OperationResult,
    responses=ERROR_RESPONSES,
    openapi_extra=json_body(ConsumeItem),
)
async def post_consume(
    environment_id: EnvironmentId,
    request: Request,
    principal: OperationWriterDep,
    uow: UnitOfWorkDep,
) -> Response:
    return await answer_single(
        request,
        ConsumeItem,
        _consumption,
        lambda items: consume(uow, principal, environment_id, items),
        coalesce=("consume", principal),
    )


@router.post(
    "/query",
    summary="The pool and the allocation tree at exact dimensions",
    description=(
        "groups is a path prefix ({} for every path). One entry per path that ever held "
        "quantity, with its own figures and its subtree's (the path and all below it)."
    ),
    response_model=AllocationQueryPublic,
    responses=ERROR_RESPONSES,
    openapi_extra=json_body(AllocationQueryBody),
)
async def post_query(
    environment_id: EnvironmentId, request: Request, principal: ReaderDep, uow: UnitOfWorkDep
) -> Response:
    body = parse_body(AllocationQueryBody, await read_body(request))
    view = await query_allocations(
        uow,
        principal,
        environment_id,
        AllocationQuery(
            organization_id=body.organization_id,
            product_id=body.product_id,
            dimensions=body.dimensions,
            groups=body.groups,
            dimension_data_source=body.dimension_data_source,
        ),
    )
    return JsonResponse(
        {
            "organizationId": view.partition.organization_id,
            "productId": view.partition.product_id,
            "dimensions": view.dimensions.as_dict(),
            "availableToAllocate": view.available_to_allocate,
            "allocations": [
                {
                    "groups": row.path.as_dict(),
                    "allocated": row.own.allocated,
                    "cumulativeAllocated": row.own.cumulative_allocated,
                    "consumed": row.own.consumed,
                    "cumulativeConsumed": row.own.cumulative_consumed,
                    "subtree": {
                        "allocated": row.subtree_allocated,
                        "consumed": row.subtree_consumed,
                    },
                }
                for row in view.rows
            ],
        }
    )
