"""The dashboard: every product's figures by level and by path, and what needs attention."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request
from starlette.responses import Response

from ringfence.services.overview import dashboard
from ringfence.web.common import CurrentSession, render, state

__all__ = ["router"]

router = APIRouter(include_in_schema=False)

PAGE_SIZE = 10


@router.get("/dashboard")
async def dashboard_page(
    request: Request,
    session: CurrentSession,
    search: Annotated[str, Query(max_length=128)] = "",
    page: Annotated[int, Query(ge=1, le=1_000_000)] = 1,
) -> Response:
    view = await dashboard(
        state(request).uow,
        session.principal,
        session.principal.environment_id,
        search=search.strip(),
        page=page,
        page_size=PAGE_SIZE,
    )
    pages = max((view.total_products + PAGE_SIZE - 1) // PAGE_SIZE, 1)
    return render(
        request,
        "dashboard.html",
        {"view": view, "search": search, "page": page, "pages": pages},
        session=session,
    )
