"""On-hand routes: change events, stock counts, index / GET / exact queries."""

from __future__ import annotations

from fastapi import APIRouter, Request
from starlette.responses import Response

from ringfence.api.dependencies import (
    EnvironmentId,
    PrincipalDep,
    UnitOfWorkDep,
    parse_body,
    read_body,
)
from ringfence.api.errors import ERROR_RESPONSES
from ringfence.api.jsonio import JsonResponse
from ringfence.api.openapi import json_body
from ringfence.api.results import (
    MAX_BULK_ITEMS,
    bulk_response,
    parse_bulk,
    reindex,
    single_response,
)
from ringfence.api.schemas import (
    BulkResult,
    ExactQuery,
    IndexQuery,
    OnHandChange,
    OnHandRowPublic,
    OperationResult,
    SetOnHandItem,
)
from ringfence.domain.onhand import OnHandChangeRequest, SetOnHandRequest
from ringfence.domain.query import ExactQueryRequest, IndexQueryRequest, OnHandRow
from ringfence.services.onhand import (
    post_onhand_changes,
    query_onhand_exact,
    query_onhand_index,
    set_onhand,
)

__all__ = ["router"]

router = APIRouter(prefix="/api/environment/{environmentId}", tags=["on-hand"])


def _change(model: OnHandChange) -> OnHandChangeRequest:
    return OnHandChangeRequest(
        id=model.id,
        organization_id=model.organization_id,
        product_id=model.product_id,
        dimensions=model.dimensions,
        quantities=model.quantities,
        dimension_data_source=model.dimension_data_source,
    )


def _count(model: SetOnHandItem) -> SetOnHandRequest:
    return SetOnHandRequest(
        id=model.id,
        organization_id=model.organization_id,
        product_id=model.product_id,
        dimensions=model.dimensions,
        quantities=model.quantities,
        dimension_data_source=model.dimension_data_source,
        modified_at=model.modified_date_time_utc,
    )


def _rows(rows: list[OnHandRow]) -> Response:
    return JsonResponse(
        [
            {
                "organizationId": row.organization_id,
                "productId": row.product_id,
                "dimensions": row.dimensions.as_dict(),
                "quantities": row.quantities,
            }
            for row in rows
        ]
    )


@router.post(
    "/onhand",
    summary="Post one on-hand change event",
    response_model=OperationResult,
    responses=ERROR_RESPONSES,
    openapi_extra=json_body(OnHandChange),
)
async def post_onhand(
    environment_id: EnvironmentId, request: Request, principal: PrincipalDep, uow: UnitOfWorkDep
) -> Response:
    change = _change(parse_body(OnHandChange, await read_body(request)))
    [result] = await post_onhand_changes(uow, principal, environment_id, [change])
    return single_response(result, request.url.path)


@router.post(
    "/onhand/bulk",
    summary=f"Post up to {MAX_BULK_ITEMS} on-hand change events",
    response_model=BulkResult,
    responses={207: {"model": BulkResult}, **ERROR_RESPONSES},
    openapi_extra=json_body(OnHandChange, array=True, max_items=MAX_BULK_ITEMS),
)
async def post_onhand_bulk(
    environment_id: EnvironmentId, request: Request, principal: PrincipalDep, uow: UnitOfWorkDep
) -> Response:
    changes, positions, refused = parse_bulk(await read_body(request), OnHandChange, _change)
    results = await post_onhand_changes(uow, principal, environment_id, changes)
    return bulk_response([*reindex(results, positions), *refused])


@router.post(
    "/setonhand/{data_source}/bulk",
    summary=f"Overwrite on-hand quantities of a data source (stock counts, up to {MAX_BULK_ITEMS})",
    response_model=BulkResult,
    responses={207: {"model": BulkResult}, **ERROR_RESPONSES},
    openapi_extra=json_body(SetOnHandItem, array=True, max_items=MAX_BULK_ITEMS),
)
async def post_setonhand_bulk(
    environment_id: EnvironmentId,
    data_source: str,
    request: Request,
    principal: PrincipalDep,
    uow: UnitOfWorkDep,
) -> Response:
    counts, positions, refused = parse_bulk(await read_body(request), SetOnHandItem, _count)
    results = await set_onhand(uow, principal, environment_id, data_source, counts)
    return bulk_response([*reindex(results, positions), *refused])


@router.post(
    "/onhand/indexquery",
    summary="Query on-hand quantities by filters, grouped",
    response_model=list[OnHandRowPublic],
    responses=ERROR_RESPONSES,
    openapi_extra=json_body(IndexQuery),
)
async def post_indexquery(
    environment_id: EnvironmentId, request: Request, principal: PrincipalDep, uow: UnitOfWorkDep
) -> Response:
    query = parse_body(IndexQuery, await read_body(request))
    rows = await query_onhand_index(
        uow,
        principal,
        environment_id,
        IndexQueryRequest(
            filters=query.filters,
            group_by=query.group_by_values,
            return_negative=query.return_negative,
            dimension_data_source=query.dimension_data_source,
        ),
    )
    return _rows(rows)


_GET_CONTROLS = {"groupby", "returnnegative", "dimensiondatasource"}


@router.get(
    "/onhand",
    summary="Query on-hand quantities by URL parameters",
    description=(
        "Every parameter other than groupBy, returnNegative and dimensionDataSource is a filter "
        "(organizationId, productId or a dimension); repeat it for several values. groupBy is "
        "comma-separated. Example: "
        "?organizationId=usmf&productId=T-shirt&siteId=1&locationId=11&groupBy=colorId,sizeId"
    ),
    response_model=list[OnHandRowPublic],
    responses=ERROR_RESPONSES,
)
async def get_onhand(
    environment_id: EnvironmentId,
    request: Request,
    principal: PrincipalDep,
    uow: UnitOfWorkDep,
    groupBy: str | None = None,
    returnNegative: bool = False,
    dimensionDataSource: str | None = None,
) -> Response:
    filters: dict[str, list[str]] = {}
    for key, value in request.query_params.multi_items():
        if key.lower() not in _GET_CONTROLS:
            filters.setdefault(key, []).append(value)
    group_by = [name.strip() for name in (groupBy or "").split(",") if name.strip()]
    rows = await query_onhand_index(
        uow,
        principal,
        environment_id,
        IndexQueryRequest(filters, group_by, returnNegative, dimensionDataSource),
    )
    return _rows(rows)


@router.post(
    "/onhand/exactquery",
    summary="Query on-hand quantities for exact tuples of dimension values",
    response_model=list[OnHandRowPublic],
    responses=ERROR_RESPONSES,
    openapi_extra=json_body(ExactQuery),
)
async def post_exactquery(
    environment_id: EnvironmentId, request: Request, principal: PrincipalDep, uow: UnitOfWorkDep
) -> Response:
    query = parse_body(ExactQuery, await read_body(request))
    rows = await query_onhand_exact(
        uow,
        principal,
        environment_id,
        ExactQueryRequest(
            organization_ids=query.filters.organization_id,
            product_ids=query.filters.product_id,
            dimensions=query.filters.dimensions,
            values=query.filters.values,
            group_by=query.group_by_values,
            return_negative=query.return_negative,
            dimension_data_source=query.dimension_data_source,
        ),
    )
    return _rows(rows)
