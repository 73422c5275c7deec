"""Reservations: list and filter, reserve, release."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from fastapi import APIRouter, Request
from starlette.responses import RedirectResponse, Response

from ringfence.domain.configuration import Configuration
from ringfence.domain.errors import RingfenceError
from ringfence.domain.reservations import ReserveRequest, UnreserveRequest
from ringfence.services.ports import ReservationFilter
from ringfence.services.reservations import list_reservations, reserve, unreserve
from ringfence.services.sessions import Session
from ringfence.web.common import (
    CurrentSession,
    configuration_of,
    form,
    new_operation_id,
    render,
    state,
)

__all__ = ["router"]

router = APIRouter(include_in_schema=False)

PAGE_SIZE = 50


async def _page(
    request: Request,
    session: Session,
    configuration: Configuration,
    *,
    failed: str | None = None,
    error: RingfenceError | None = None,
    typed: dict[str, Any] | None = None,
) -> Response:
    uow = state(request).uow
    principal = session.principal
    params = request.query_params
    listing = ReservationFilter(
        organization_id=params.get("organizationId") or None,
        product_id=params.get("productId") or None,
        open_only=params.get("open") == "on",
        after=params.get("after") or None,
        limit=PAGE_SIZE,
    )
    page = await list_reservations(uow, principal, principal.environment_id, listing)
    next_url = None
    if page.next_cursor is not None:
        query = {k: v for k, v in params.items() if k != "after"}
        next_url = "/reservations?" + urlencode({**query, "after": page.next_cursor})
    return render(
        request,
        "reservations.html",
        {
            "configuration": configuration,
            "params": params,
            "reservations": page.reservations,
            "next_url": next_url,
            "failed": failed,
            "error": error,
            "typed": typed or {},
            "reserve_id": new_operation_id("reserve"),
            "notice": params.get("notice"),
            "release_ids": {
                r.reservation_id: new_operation_id("unreserve") for r in page.reservations
            },
        },
        session=session,
    )


@router.get("/reservations")
async def reservations_page(request: Request, session: CurrentSession) -> Response:
    return await _page(request, session, await configuration_of(request, session))


@router.post("/reservations/reserve")
async def reserve_form(request: Request, session: CurrentSession) -> Response:
    data = await form(request, session)
    uow = state(request).uow
    principal = session.principal
    configuration = await configuration_of(request, session)
    typed: dict[str, Any] = {
        "id": str(data.get("id") or new_operation_id("reserve")),
        "organizationId": str(data.get("organizationId") or "").strip(),
        "productId": str(data.get("productId") or "").strip(),
        "dimensions": {
            name: str(data.get(name) or "").strip()
            for name in configuration.dimension_hierarchy
            if str(data.get(name) or "").strip()
        },
        "quantity": str(data.get("quantity") or "").strip(),
        "check": data.get("check") == "on",
    }
    [result] = await reserve(
        uow,
        principal,
        principal.environment_id,
        [
            ReserveRequest(
                id=typed["id"],
                organization_id=typed["organizationId"],
                product_id=typed["productId"],
                dimensions=typed["dimensions"],
                quantity=typed["quantity"],
                check_availability=typed["check"],
            )
        ],
    )
    if result.error is not None:
        return await _page(
            request,
            session,
            configuration,
            failed="reserve",
            error=result.error,
            typed=typed,
        )
    notice = f"Reserved {typed['quantity']} as {result.body['reservationId']}."
    return RedirectResponse("/reservations?" + urlencode({"notice": notice}), status_code=303)


@router.post("/reservations/unreserve")
async def unreserve_form(request: Request, session: CurrentSession) -> Response:
    data = await form(request, session)
    principal = session.principal
    reservation_id = str(data.get("reservationId") or "")
    quantity = str(data.get("quantity") or "").strip()
    [result] = await unreserve(
        state(request).uow,
        principal,
        principal.environment_id,
        [
            UnreserveRequest(
                id=str(data.get("id") or new_operation_id("unreserve")),
                organization_id=str(data.get("organizationId") or ""),
                reservation_id=reservation_id,
                quantity=quantity,
            )
        ],
    )
    if result.error is not None:
        return await _page(
            request,
            session,
            await configuration_of(request, session),
            failed=f"unreserve-{reservation_id}",
            error=result.error,
            typed={"quantity": quantity},
        )
    notice = f"Released {quantity} of {reservation_id}."
    if result.body.get("message"):
        notice += f" {result.body['message']}."
    return RedirectResponse("/reservations?" + urlencode({"notice": notice}), status_code=303)
