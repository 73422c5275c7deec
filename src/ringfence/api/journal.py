"""The journal route: every accepted mutation, filterable and paged."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Query, Request
from starlette.responses import Response

from ringfence.api.dependencies import (
    EnvironmentId,
    ReaderDep,
    UnitOfWorkDep,
)
from ringfence.api.errors import ERROR_RESPONSES
from ringfence.api.jsonio import JsonResponse
from ringfence.api.schemas import JournalPagePublic
from ringfence.domain.errors import FieldIssue, Invalid
from ringfence.domain.operations import JournalEntry, OperationKind
from ringfence.services.journal import MAX_PAGE_SIZE, list_journal
from ringfence.services.ports import JournalFilter

__all__ = ["router"]

router = APIRouter(prefix="/api/environment/{environmentId}", tags=["journal"])


def _entry(entry: JournalEntry) -> dict[str, object]:
    return {
        "sequence": entry.sequence,
        "recordedAt": entry.recorded_at.isoformat(),
        "actor": entry.actor,
        "kind": entry.kind.value,
        "id": entry.operation_id,
        "organizationId": entry.partition.organization_id,
        "productId": entry.partition.product_id,
        "request": entry.request,
        "effects": list(entry.effects),
        "result": entry.result,
    }


def _kind(text: str | None) -> OperationKind | None:
    if text is None:
        return None
    try:
        return OperationKind(text)
    except ValueError:
        kinds = ", ".join(kind.value for kind in OperationKind)
        message = f"unknown kind {text!r}; kinds: {kinds}"
        raise Invalid("invalid-query", message, (FieldIssue(("kind",), message),)) from None


@router.get(
    "/journal",
    summary="The journal of accepted mutations, oldest first (or newest first with order=desc)",
    response_model=JournalPagePublic,
    responses=ERROR_RESPONSES,
)
async def read_journal(
    environment_id: EnvironmentId,
    request: Request,
    principal: ReaderDep,
    uow: UnitOfWorkDep,
    organizationId: str | None = None,
    productId: str | None = None,
    kind: str | None = None,
    id: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    after: Annotated[
        int | None, Query(ge=0, le=2**63 - 1, description="sequence cursor from `next`")
    ] = None,
    order: Annotated[str, Query(pattern="^(asc|desc)$")] = "asc",
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE_SIZE)] = 100,
) -> Response:
    page = await list_journal(
        uow,
        principal,
        environment_id,
        JournalFilter(
            organization_id=organizationId,
            product_id=productId,
            kind=_kind(kind),
            operation_id=id,
            since=since,
            until=until,
            after=after,
            descending=order == "desc",
            limit=limit,
        ),
    )
    next_url = (
        str(request.url.include_query_params(after=page.next_cursor))
        if page.next_cursor is not None
        else None
    )
    return JsonResponse({"entries": [_entry(e) for e in page.entries], "next": next_url})
