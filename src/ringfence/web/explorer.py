"""The on-hand explorer: the index query as a form, a table of every measure, CSV download."""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence

from fastapi import APIRouter, Request
from starlette.datastructures import QueryParams
from starlette.responses import Response

from ringfence.domain.configuration import Configuration, MeasureRef
from ringfence.domain.errors import RingfenceError
from ringfence.domain.quantity import format_quantity
from ringfence.domain.query import IndexQueryRequest, OnHandRow
from ringfence.services.onhand import query_onhand_index
from ringfence.services.overview import product_catalog
from ringfence.services.sessions import Session
from ringfence.web.common import (
    SECURITY_HEADERS,
    CurrentSession,
    configuration_of,
    render,
    state,
)

__all__ = ["router"]

router = APIRouter(include_in_schema=False)

SHOWN_ROWS = 500


def _values(text: str) -> list[str]:
    return [value.strip() for value in text.split(",") if value.strip()]


def _request(params: QueryParams, configuration: Configuration) -> IndexQueryRequest:
    filters: dict[str, list[str]] = {
        "organizationId": _values(params.get("organizationId", "")),
        "productId": _values(params.get("productId", "")),
    }
    for name in configuration.dimension_hierarchy:
        values = _values(params.get(name, ""))
        if values:
            filters[name] = values
    return IndexQueryRequest(
        filters=filters,
        group_by=[name for name in params.getlist("groupBy") if name],
        return_negative=params.get("returnNegative") == "on",
    )


def _columns(configuration: Configuration) -> list[MeasureRef]:
    return [ref for refs in configuration.measure_layout.values() for ref in refs]


async def _query(
    request: Request, session: Session
) -> tuple[Configuration, IndexQueryRequest, list[OnHandRow] | None, RingfenceError | None]:
    uow = state(request).uow
    principal = session.principal
    configuration = await configuration_of(request, session)
    query = _request(request.query_params, configuration)
    if not query.filters["organizationId"]:
        return configuration, query, None, None
    try:
        rows = await query_onhand_index(uow, principal, principal.environment_id, query)
    except RingfenceError as error:
        return configuration, query, None, error
    return configuration, query, rows, None


@router.get("/onhand")
async def explorer_page(request: Request, session: CurrentSession) -> Response:
    configuration, query, rows, error = await _query(request, session)
    products = await product_catalog(
        state(request).uow, session.principal, session.principal.environment_id, limit=500
    )
    return render(
        request,
        "explorer.html",
        {
            "configuration": configuration,
            "query": query,
            "params": request.query_params,
            "rows": rows[:SHOWN_ROWS] if rows is not None else None,
            "total_rows": len(rows) if rows is not None else 0,
            "columns": _columns(configuration),
            "dimension_columns": _dimension_columns(configuration, query.group_by),
            "products": products,
            "error": error,
            "csv_url": f"/onhand.csv?{request.url.query}",
        },
        session=session,
    )


def _dimension_columns(configuration: Configuration, group_by: Sequence[str]) -> list[str]:
    return list(dict.fromkeys((*configuration.partition_dimensions, *group_by)))


def to_csv(configuration: Configuration, rows: Sequence[OnHandRow], group_by: Sequence[str]) -> str:
    """One line per row: organization, product, the grouped dimensions, every measure."""
    columns = _columns(configuration)
    dimensions = _dimension_columns(configuration, group_by)
    output = io.StringIO()
    writer = csv.writer(output, lineterminator="\n")
    writer.writerow(["organizationId", "productId", *dimensions, *map(str, columns)])
    for row in rows:
        writer.writerow(
            [
                row.organization_id,
                row.product_id,
                *(row.dimensions.get(name, "") for name in dimensions),
                *(format_quantity(row.quantities[ref.data_source][ref.measure]) for ref in columns),
            ]
        )
    return output.getvalue()


@router.get("/onhand.csv")
async def explorer_csv(request: Request, session: CurrentSession) -> Response:
    configuration, query, rows, error = await _query(request, session)
    if error is not None:
        raise error
    body = to_csv(configuration, rows or [], query.group_by)
    return Response(
        body,
        media_type="text/csv; charset=utf-8",
        headers={
            **SECURITY_HEADERS,
            "Content-Disposition": 'attachment; filename="ringfence-onhand.csv"',
        },
    )
