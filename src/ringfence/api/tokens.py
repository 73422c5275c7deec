"""Token routes (admin): create, list, revoke the tokens of this environment."""

from __future__ import annotations

from fastapi import APIRouter, Request
from starlette.responses import Response

from ringfence.api.dependencies import (
    AdminDep,
    EnvironmentId,
    UnitOfWorkDep,
    parse_body,
    read_body,
)
from ringfence.api.errors import ERROR_RESPONSES
from ringfence.api.jsonio import JsonResponse
from ringfence.api.openapi import json_body
from ringfence.api.schemas import TokenCreate, TokenIssued, TokenPublic
from ringfence.domain.access import Role
from ringfence.services.ports import TokenRecord
from ringfence.services.tokens import create_token, list_tokens, revoke_token

__all__ = ["router"]

router = APIRouter(prefix="/api/environment/{environmentId}", tags=["tokens"])


def _token(record: TokenRecord) -> dict[str, object]:
    return {
        "name": record.name,
        "role": record.role.value,
        "organizations": list(record.organizations) if record.organizations else None,
        "groups": [f"{name}={value}" for name, value in record.group_scope],
        "createdAt": record.created_at.isoformat(),
        "revokedAt": record.revoked_at.isoformat() if record.revoked_at else None,
    }


@router.get(
    "/tokens",
    summary="The environment's tokens (admin), never their secrets",
    response_model=list[TokenPublic],
    responses=ERROR_RESPONSES,
)
async def get_tokens(
    environment_id: EnvironmentId, principal: AdminDep, uow: UnitOfWorkDep
) -> Response:
    del environment_id  # the principal's environment, checked by PrincipalDep
    return JsonResponse([_token(record) for record in await list_tokens(uow, principal)])


@router.post(
    "/tokens",
    summary="Create a token (admin); the answer holds its secret, shown this once",
    status_code=201,
    response_model=TokenIssued,
    responses=ERROR_RESPONSES,
    openapi_extra=json_body(TokenCreate),
)
async def post_token(
    environment_id: EnvironmentId, request: Request, principal: AdminDep, uow: UnitOfWorkDep
) -> Response:
    del environment_id
    body = parse_body(TokenCreate, await read_body(request))
    issued = await create_token(
        uow,
        principal,
        Role.parse(body.role),
        name=body.name,
        organizations=body.organizations,
        groups=body.groups,
        create_environment=False,
    )
    return JsonResponse({**_token(issued.record), "token": issued.token}, status_code=201)


@router.delete(
    "/tokens/{name}",
    summary="Revoke a token (admin); its holder is refused from the next request on",
    response_model=TokenPublic,
    responses=ERROR_RESPONSES,
)
async def delete_token(
    environment_id: EnvironmentId, name: str, principal: AdminDep, uow: UnitOfWorkDep
) -> Response:
    del environment_id
    return JsonResponse(_token(await revoke_token(uow, principal, name)))
