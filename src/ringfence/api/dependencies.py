"""FastAPI dependencies: the unit-of-work factory and the authenticated principal."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Annotated, Any, TypeVar

from fastapi import Depends, Path, Request
from pydantic import BaseModel, ValidationError

from ringfence.api.errors import invalid_from_validation
from ringfence.api.jsonio import read_json
from ringfence.domain.access import Principal, Role
from ringfence.domain.errors import Forbidden, Unauthenticated
from ringfence.services.coalescer import Coalescer
from ringfence.services.ports import UnitOfWorkFactory
from ringfence.services.tokens import authenticate, authenticate_known, authenticate_many

__all__ = [
    "AdminDep",
    "ApiState",
    "EnvironmentId",
    "OperationPlannerDep",
    "OperationWriterDep",
    "PlannerDep",
    "PrincipalDep",
    "ReaderDep",
    "UnitOfWorkDep",
    "WriterDep",
    "coalescer_of",
    "parse_body",
    "read_body",
]

M = TypeVar("M", bound=BaseModel)


@dataclass(frozen=True)
class ApiState:
    """What the API needs from the composition root (kept on ``app.state.api``)."""

    uow: UnitOfWorkFactory
    max_body_bytes: int
    coalescer: Coalescer | None = field(default_factory=Coalescer)
    """None when coalescing is turned off (``RINGFENCE_COALESCE=off``)."""
    coalesce_by_partition: bool = False
    """Batch only operations on the same product (``RINGFENCE_COALESCE=partition``)."""


def _state(request: Request) -> ApiState:
    state: ApiState = request.app.state.api
    return state


def coalescer_of(request: Request) -> tuple[Coalescer | None, bool]:
    """The coalescer (None when off) and whether it batches per partition only."""
    state = _state(request)
    return state.coalescer, state.coalesce_by_partition


async def get_uow(request: Request) -> UnitOfWorkFactory:
    # async: FastAPI runs a plain function dependency in a worker thread, a thread hand-off
    # per request (7% of a consume's CPU under load).
    return _state(request).uow


EnvironmentId = Annotated[
    str, Path(alias="environmentId", description="The environment (tenant) id", max_length=64)
]

UnitOfWorkDep = Annotated[UnitOfWorkFactory, Depends(get_uow)]

_TOKENS = ("tokens",)
"""The coalescer's key for token checks (operation keys are tuples of three)."""


async def get_principal(request: Request) -> Principal:
    """The caller, its token read from the database after the request arrived."""
    return await _principal(request, None)


async def _principal(request: Request, known_for: Role | None) -> Principal:
    """The caller; with ``known_for``, a token this process found valid before is taken
    without a read if it grants that role in the path's environment: the operation the request
    runs then confirms in its own transaction that it is not revoked (for endpoints whose
    every answer comes from :func:`~ringfence.services.mutations.run_mutations`, or is
    refused only after :func:`confirm_caller`)."""
    header = request.headers.get("authorization")
    if not header:
        raise Unauthenticated("missing-token", "send the header 'Authorization: Bearer <token>'")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthenticated(
            "invalid-token", "the Authorization header must read 'Bearer <token>'"
        )
    state = _state(request)
    uow = state.uow
    token = token.strip()
    environment_id = request.path_params.get("environmentId")
    if known_for is not None:
        known = authenticate_known(token)
        # Anything it would be refused goes the way of a read: a revoked token is refused as
        # such (401), not for its role or environment.
        if (
            known is not None
            and known.environment_id == environment_id
            and known.role.includes(known_for)
        ):
            return known
    if state.coalescer is None:
        principal = await authenticate(uow, token)
    else:
        # Concurrent requests' tokens are read together, each read starting after its request
        # arrived: one query per batch, revocation still effective from the next request on.
        answer = await state.coalescer.submit(
            _TOKENS, token, lambda tokens: authenticate_many(uow, tokens)
        )
        if isinstance(answer, Unauthenticated):
            raise answer
        principal = answer
    if environment_id is not None and environment_id != principal.environment_id:
        # The same answer whether that environment exists or not.
        raise Forbidden("forbidden", "this token does not grant access to that environment")
    return principal


PrincipalDep = Annotated[Principal, Depends(get_principal)]


def _with_role(
    role: Role, *, confirmed_later: bool = False
) -> Callable[[Request], Awaitable[Principal]]:
    known_for = role if confirmed_later else None

    async def dependency(request: Request) -> Principal:
        # One dependency, not a chain of them: FastAPI's resolution is a cost per request.
        principal = await _principal(request, known_for)
        # Before the body is read: a caller without the role learns nothing from validation.
        principal.require(role, principal.environment_id)
        return principal

    return dependency


ReaderDep = Annotated[Principal, Depends(_with_role(Role.READER))]
WriterDep = Annotated[Principal, Depends(_with_role(Role.WRITER))]
PlannerDep = Annotated[Principal, Depends(_with_role(Role.PLANNER))]
AdminDep = Annotated[Principal, Depends(_with_role(Role.ADMIN))]
OperationWriterDep = Annotated[Principal, Depends(_with_role(Role.WRITER, confirmed_later=True))]
"""A writer of one operation (:func:`~ringfence.api.results.answer_single`) whose token, if
this process knows it, is confirmed not revoked by the transaction of that operation instead
of a read of its own."""
OperationPlannerDep = Annotated[Principal, Depends(_with_role(Role.PLANNER, confirmed_later=True))]
"""A planner of one operation, as :data:`OperationWriterDep`."""


async def confirm_caller(request: Request, principal: Principal) -> None:
    """Refuse (401) a caller taken without a read whose token is revoked, before a request is
    refused without running its operation (a body that does not parse)."""
    if not principal.confirmed:
        await get_principal(request)


async def read_body(request: Request) -> Any:
    """The JSON body, exact and size-limited."""
    return await read_json(request, _state(request).max_body_bytes)


def parse_body(model: type[M], data: Any) -> M:
    """Validate JSON data against a request model (422 listing every field on failure)."""
    try:
        return model.model_validate(data)
    except ValidationError as error:
        raise invalid_from_validation(error.errors()) from None
