"""The journal: who did what, when, with which effects; searchable and paged."""

from __future__ import annotations

import json
from datetime import datetime
from urllib.parse import urlencode

from fastapi import APIRouter, Request
from starlette.responses import Response

from ringfence.domain.errors import FieldIssue, Invalid, RingfenceError
from ringfence.domain.operations import OperationKind
from ringfence.services.journal import list_journal
from ringfence.services.ports import JournalFilter
from ringfence.web.common import CurrentSession, render, state

__all__ = ["router"]

router = APIRouter(include_in_schema=False)

PAGE_SIZE = 50


def _moment(name: str, text: str) -> datetime | None:
    if not text:
        return None
    try:
        return datetime.fromisoformat(text)
    except ValueError:
        message = "must be a date and time such as 2026-11-25T09:00"
        issue = FieldIssue((name,), message)
        raise Invalid("invalid-query", f"{name}: {message}", (issue,)) from None


def _cursor(text: str) -> int | None:
    """A sequence number from a `next` link; anything else starts from the newest entry."""
    return int(text) if text.isdigit() and len(text) <= 18 else None


@router.get("/journal")
async def journal_page(request: Request, session: CurrentSession) -> Response:
    params = request.query_params
    kind_text = params.get("kind", "")
    entries = []
    next_url = None
    error: RingfenceError | None = None
    try:
        page = await list_journal(
            state(request).uow,
            session.principal,
            session.principal.environment_id,
            JournalFilter(
                organization_id=params.get("organizationId") or None,
                product_id=params.get("productId") or None,
                kind=OperationKind(kind_text) if kind_text in set(OperationKind) else None,
                operation_id=params.get("id") or None,
                since=_moment("since", params.get("since", "")),
                until=_moment("until", params.get("until", "")),
                after=_cursor(params.get("after", "")),
                descending=True,
                limit=PAGE_SIZE,
            ),
        )
        entries = page.entries
        if page.next_cursor is not None:
            query = {k: v for k, v in params.items() if k != "after"}
            next_url = "/journal?" + urlencode({**query, "after": page.next_cursor})
    except RingfenceError as problem:
        error = problem
    return render(
        request,
        "journal.html",
        {
            "params": params,
            "kinds": [kind.value for kind in OperationKind],
            "entries": entries,
            "next_url": next_url,
            "error": error,
            "pretty": lambda value: json.dumps(value, indent=2, default=str, ensure_ascii=False),
        },
        session=session,
    )
