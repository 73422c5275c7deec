"""On-hand routes: change events, stock counts, index / GET / exact queries."""

from __future__ import annotations

from fastapi import APIRouter, Request
from starlette.responses import Response

from ringfence.api.dependencies import (
    EnvironmentId,
    OperationWriterDep,
    ReaderDep,
    UnitOfWorkDep,
    WriterDep,
    parse_body,
    read_body,
)
from ringfence.api.errors import ERROR_RESPONSES
from ringfence.api.jsonio import JsonResponse
from ringfence.api.openapi import json_body
from ringfence.api.results import MAX_BULK_ITEMS, answer_bulk, answer_single
from ringfence.api.schemas import (
    BulkResult,
    ExactQuery,
    IndexQuery,
    OnHandChange,
    OnHandRowPublic,
    OperationResult,
    SetOnHandItem,
)
from ringfence.domain.errors import FieldIssue, Invalid
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
    environment_id: EnvironmentId,
    request: Request,
    principal: OperationWriterDep,
    uow: UnitOfWorkDep,
) -> Response:
    return await answer_single(
        request,
        OnHandChange,
        _change,
        lambda items: post_onhand_changes(uow, principal, environment_id, items),
        coalesce=("onhand", principal),
    )


@router.post(
    "/onhand/bulk",
    summary=f"Post up to {MAX_BULK_ITEMS} on-hand change events",
    response_model=BulkResult,
    responses={207: {"model": BulkResult}, **ERROR_RESPONSES},
    openapi_extra=json_body(OnHandChange, array=True, max_items=MAX_BULK_ITEMS),
)
async def post_onhand_bulk(
    environment_id: EnvironmentId, request: Request, principal: WriterDep, uow: UnitOfWorkDep
) -> Response:
    return await answer_bulk(
        request,
        OnHandChange,
        _change,
        lambda items: post_onhand_changes(uow, principal, environment_id, items),
    )


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
    principal: WriterDep,
    uow: UnitOfWorkDep,
) -> Response:
    return await answer_bulk(
        request,
        SetOnHandItem,
        _count,
        lambda items: set_onhand(uow, principal, environment_id, data_source, items),
    )


@router.post(
    "/onhand/indexquery",
    summary="Query on-hand quantities by filters, grouped",
    response_model=list[OnHandRowPublic],
    responses=ERROR_RESPONSES,
    openapi_extra=json_body(IndexQuery),
)
async def post_indexquery(
    environment_id: EnvironmentId, request: Request, principal: ReaderDep, uow: UnitOfWorkDep
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


_GROUP_BY, _RETURN_NEGATIVE, _DIMENSION_DATA_SOURCE = (
    "groupby",
    "returnnegative",
    "dimensiondatasource",
)


def _query_parameter(name: str, description: str, kind: str = "string") -> dict[str, object]:
    return {"name": name, "in": "query", "description": description, "schema": {"type": kind}}


def _flag(name: str, text: str) -> bool:
    lowered = text.strip().lower()
    if lowered in ("true", "1", "yes"):
        return True
    if lowered in ("false", "0", "no", ""):
        return False
    message = f"must be true or false, not {text!r}"
    raise Invalid("invalid-query", f"{name}: {message}", (FieldIssue((name,), message),))


@router.get(
    "/onhand",
    summary="Query on-hand quantities by URL parameters",
    description=(
        "Every parameter other than groupBy, returnNegative and dimensionDataSource is a filter "
        "(organizationId, productId or a dimension); repeat it for several values. groupBy is "
        "comma-separated (or repeated). Parameter names are case-insensitive. Example: "
        "?organizationId=usmf&productId=T-shirt&siteId=1&locationId=11&groupBy=colorId,sizeId"
    ),
    response_model=list[OnHandRowPublic],
    responses=ERROR_RESPONSES,
    openapi_extra={
        "parameters": [
            _query_parameter("organizationId", "Organization (required; repeatable)"),
            _query_parameter("productId", "Product (repeatable; none: every product)"),
            _query_parameter("groupBy", "Dimensions to group by, comma-separated"),
            _query_parameter("returnNegative", "true: show negative values (else 0)", "boolean"),
            _query_parameter("dimensionDataSource", "Data source whose dimension names to accept"),
        ]
    },
)
async def get_onhand(
    environment_id: EnvironmentId, request: Request, principal: ReaderDep, uow: UnitOfWorkDep
) -> Response:
    # Read by hand: any other parameter is a dimension filter, and names are case-insensitive.
    filters: dict[str, list[str]] = {}
    group_by: list[str] = []
    return_negative = False
    data_source: str | None = None
    for key, value in request.query_params.multi_items():
        control = key.lower()
        if control == _GROUP_BY:
            group_by += [name.strip() for name in value.split(",") if name.strip()]
        elif control == _RETURN_NEGATIVE:
            return_negative = _flag(key, value)
        elif control == _DIMENSION_DATA_SOURCE:
            data_source = value or None
        else:
            filters.setdefault(key, []).append(value)
    rows = await query_onhand_index(
        uow,
        principal,
        environment_id,
        IndexQueryRequest(filters, group_by, return_negative, data_source),
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
    environment_id: EnvironmentId, request: Request, principal: ReaderDep, uow: UnitOfWorkDep
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
