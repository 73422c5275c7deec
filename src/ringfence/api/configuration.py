"""Configuration routes: read, replace (validated, versioned, atomic), history."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Header, Path, Request
from starlette.responses import Response

from ringfence.api.dependencies import (
    AdminDep,
    EnvironmentId,
    ReaderDep,
    UnitOfWorkDep,
    read_body,
)
from ringfence.api.errors import ERROR_RESPONSES
from ringfence.api.jsonio import JsonResponse
from ringfence.api.openapi import json_body
from ringfence.api.schemas import ConfigurationDocument, ConfigurationSummary
from ringfence.domain.errors import FieldIssue, Invalid
from ringfence.services.configuration import (
    ConfigurationVersion,
    apply_configuration,
    configuration_history,
    get_configuration,
)

__all__ = ["router"]

router = APIRouter(prefix="/api/environment/{environmentId}", tags=["configuration"])

MAX_VERSION = 2**31 - 1


def _document(version: ConfigurationVersion) -> Response:
    return JsonResponse(
        {"version": version.version, **version.document},
        headers={"ETag": f'"{version.version}"'},
    )


def _expected_version(if_match: str | None) -> int | None:
    if if_match is None or if_match.strip() == "*":
        return None
    text = if_match.strip().removeprefix("W/").strip('"')
    if not text.isdigit() or int(text) > MAX_VERSION:
        message = 'If-Match must be a configuration version such as "3"'
        raise Invalid("invalid-request", message, (FieldIssue(("If-Match",), message),))
    return int(text)


@router.get(
    "/configuration",
    summary="The current configuration (its version is also the ETag)",
    response_model=ConfigurationDocument,
    responses=ERROR_RESPONSES,
)
async def read_configuration(
    environment_id: EnvironmentId, principal: ReaderDep, uow: UnitOfWorkDep
) -> Response:
    return _document(await get_configuration(uow, principal, environment_id))


@router.put(
    "/configuration",
    summary="Replace the configuration (admin): validated, then activated atomically",
    description=(
        "Send If-Match with the version you edited to refuse the change if someone else "
        "changed the configuration meanwhile (409 configuration-version-conflict). A change that "
        "would corrupt stored data is refused (409 configuration-change-blocked) with the list "
        "of what blocks it."
    ),
    response_model=ConfigurationDocument,
    responses=ERROR_RESPONSES,
    openapi_extra=json_body(ConfigurationDocument),
)
async def replace_configuration(
    environment_id: EnvironmentId,
    request: Request,
    principal: AdminDep,
    uow: UnitOfWorkDep,
    if_match: str | None = Header(default=None),
) -> Response:
    document = await read_body(request)
    if not isinstance(document, dict):
        message = "the configuration is a JSON object"
        raise Invalid("invalid-configuration", message, (FieldIssue((), message),))
    document.pop("version", None)
    version = await apply_configuration(
        uow, principal, environment_id, document, expected_version=_expected_version(if_match)
    )
    return _document(version)


@router.get(
    "/configuration/versions",
    summary="Every configuration version, newest first",
    response_model=list[ConfigurationSummary],
    responses=ERROR_RESPONSES,
)
async def list_configuration_versions(
    environment_id: EnvironmentId, principal: ReaderDep, uow: UnitOfWorkDep
) -> Response:
    history = await configuration_history(uow, principal, environment_id)
    return JsonResponse(
        [
            {
                "version": item.version,
                "createdAt": item.created_at.isoformat(),
                "createdBy": item.created_by,
            }
            for item in history
        ]
    )


@router.get(
    "/configuration/versions/{version}",
    summary="One configuration version",
    response_model=ConfigurationDocument,
    responses=ERROR_RESPONSES,
)
async def read_configuration_version(
    environment_id: EnvironmentId,
    version: Annotated[int, Path(ge=1, le=MAX_VERSION)],
    principal: ReaderDep,
    uow: UnitOfWorkDep,
) -> Response:
    return _document(await get_configuration(uow, principal, environment_id, version))
