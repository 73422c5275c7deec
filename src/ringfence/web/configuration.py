"""Configuration: view any version, (admin) edit the current one, version history."""

from __future__ import annotations

import json
from typing import Annotated
from urllib.parse import urlencode

from fastapi import APIRouter, Query, Request
from starlette.responses import RedirectResponse, Response

from ringfence.domain.errors import FieldIssue, Invalid, RingfenceError
from ringfence.services.configuration import (
    apply_configuration,
    configuration_history,
    get_configuration,
)
from ringfence.services.sessions import Session
from ringfence.web.common import CurrentSession, form, render, state

__all__ = ["router"]

router = APIRouter(include_in_schema=False)


async def _page(
    request: Request,
    session: Session,
    *,
    version: int | None = None,
    error: RingfenceError | None = None,
    typed: str | None = None,
) -> Response:
    uow = state(request).uow
    principal = session.principal
    current = await get_configuration(uow, principal, principal.environment_id)
    shown = (
        current
        if version is None
        else await get_configuration(uow, principal, principal.environment_id, version)
    )
    history = await configuration_history(uow, principal, principal.environment_id)
    return render(
        request,
        "configuration.html",
        {
            "current": current,
            "shown": shown,
            "configuration": shown.configuration,
            "history": history,
            "document_text": typed
            if typed is not None
            else json.dumps(current.document, indent=2, ensure_ascii=False),
            "error": error,
            "notice": request.query_params.get("notice"),
        },
        session=session,
    )


@router.get("/configuration")
async def configuration_page(
    request: Request,
    session: CurrentSession,
    version: Annotated[int | None, Query(ge=1, le=2**31 - 1)] = None,
) -> Response:
    return await _page(request, session, version=version)


@router.post("/configuration")
async def configuration_form(request: Request, session: CurrentSession) -> Response:
    data = await form(request, session)
    text = str(data.get("document") or "")
    expected = str(data.get("version") or "")
    try:
        try:
            document = json.loads(text)
        except json.JSONDecodeError as problem:
            location = f"line {problem.lineno}, column {problem.colno}"
            message = f"not valid JSON at {location}: {problem.msg}"
            raise Invalid(
                "invalid-configuration", message, (FieldIssue((location,), problem.msg),)
            ) from None
        if not isinstance(document, dict):
            raise Invalid("invalid-configuration", "the configuration is a JSON object")
        document.pop("version", None)
        applied = await apply_configuration(
            state(request).uow,
            session.principal,
            session.principal.environment_id,
            document,
            expected_version=int(expected) if expected.isdigit() else None,
        )
    except RingfenceError as error:
        return await _page(request, session, error=error, typed=text)
    notice = f"Configuration version {applied.version} is active."
    return RedirectResponse("/configuration?" + urlencode({"notice": notice}), status_code=303)
