"""Use cases of access tokens: create, list, revoke, authenticate.

A token reads ``rf_<id>_<secret>``. Only a SHA-256 digest of the whole token is stored; it is
looked up by its public id and compared in constant time. The token text is shown once, when
created, and never logged.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime

from ringfence.domain.access import Principal, Role, parse_group_scope
from ringfence.domain.dimensions import check_identifier
from ringfence.domain.errors import Conflict, Forbidden, NotFound, Unauthenticated
from ringfence.services.configuration import ensure_environment
from ringfence.services.ports import TokenRecord, UnitOfWork, UnitOfWorkFactory, token_valid

__all__ = [
    "IssuedToken",
    "authenticate",
    "authenticate_known",
    "authenticate_many",
    "confirm_token",
    "create_token",
    "list_tokens",
    "principal_of",
    "revoke_token",
    "revoked",
]

_PREFIX = "rf_"


@dataclass(frozen=True, slots=True)
class IssuedToken:
    record: TokenRecord
    token: str
    """The secret text: give it to its holder; it cannot be shown again."""


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


async def create_token(
    uow: UnitOfWorkFactory,
    principal: Principal,
    role: Role,
    *,
    name: str | None = None,
    organizations: Sequence[str] = (),
    groups: Sequence[str] = (),
    create_environment: bool = True,
) -> IssuedToken:
    """Issue a token for the principal's environment (an administrator's); with
    ``create_environment``, that environment is created with the default configuration if it is
    missing (the command line's way to start one)."""
    environment_id = principal.environment_id
    principal.require(Role.ADMIN, environment_id)
    _require_within(principal, organizations, groups)
    if create_environment:
        await ensure_environment(uow, environment_id, actor="token create")
    token_id = secrets.token_hex(8)
    token = f"{_PREFIX}{token_id}_{secrets.token_urlsafe(32)}"
    record = TokenRecord(
        token_id=token_id,
        environment_id=environment_id,
        name=check_identifier(name or f"{role.value}-{token_id[:6]}", ("name",), "token name"),
        role=role,
        secret_hash=_digest(token),
        created_at=datetime.now(UTC),
        organizations=tuple(
            check_identifier(org, ("organizations", i), "organization id")
            for i, org in enumerate(organizations)
        )
        or None,
        group_scope=parse_group_scope(groups),
    )
    async with uow() as work:
        if not await work.environments.exists(environment_id):
            raise NotFound(
                "environment-not-found", f"environment {environment_id!r} does not exist"
            )
        existing = await work.tokens.get_by_name(environment_id, record.name)
        if existing is not None:
            raise Conflict(
                "token-name-taken",
                f"environment {environment_id!r} already has a token named {record.name!r}",
            )
        await work.tokens.add(record)
        await work.commit()
    return IssuedToken(record, token)


def _require_within(
    principal: Principal, organizations: Sequence[str], groups: Sequence[str]
) -> None:
    """An administrator narrowed to organizations or a group prefix issues no wider token."""
    if principal.organizations is not None:
        wider = [org for org in organizations if org not in principal.organizations]
        if not organizations or wider:
            raise Forbidden(
                "organization-out-of-scope",
                "this token may only issue tokens limited to its own organizations: "
                + ", ".join(sorted(principal.organizations)),
            )
    if principal.group_scope:
        scope = [(name.lower(), value) for name, value in principal.group_scope]
        asked = [(name.lower(), value) for name, value in parse_group_scope(groups)]
        if asked[: len(scope)] != scope:
            raise Forbidden(
                "group-out-of-scope",
                "this token may only issue tokens inside its own allocation subtree: "
                + ", ".join(f"{name}={value}" for name, value in principal.group_scope),
            )


async def list_tokens(uow: UnitOfWorkFactory, principal: Principal) -> list[TokenRecord]:
    """The tokens of the principal's environment (an administrator's), never their secrets."""
    principal.require(Role.ADMIN, principal.environment_id)
    async with uow(read_only=True) as work:
        return await work.tokens.list_for(principal.environment_id)


async def revoke_token(uow: UnitOfWorkFactory, principal: Principal, name: str) -> TokenRecord:
    """Revoke by name (an administrator); takes effect on the holder's next request."""
    environment_id = principal.environment_id
    principal.require(Role.ADMIN, environment_id)
    async with uow() as work:
        record = await work.tokens.get_by_name(environment_id, name)
        if record is None:
            raise NotFound(
                "token-not-found", f"environment {environment_id!r} has no token named {name!r}"
            )
        if record.revoked_at is not None:
            return record
        now = datetime.now(UTC)
        await work.tokens.revoke(record.token_id, now)
        await work.commit()
    _known.pop(record.token_id, None)  # other processes learn it from their next confirmation
    return replace(record, revoked_at=now)


_INVALID = "the bearer token is not valid (unknown, malformed or revoked)"

_KNOWN_AT_MOST = 4096
_known: OrderedDict[str, tuple[str, Principal]] = OrderedDict()
"""Tokens this process found valid, by id, the most recently found last: their digest and
the principal they stand for, not :attr:`~ringfence.domain.access.Principal.confirmed`. What a
token grants (environment, role, scope) never changes; only whether it is revoked does, and
that is confirmed in the transaction of every operation a known token is taken for."""


async def authenticate(uow: UnitOfWorkFactory, token: str) -> Principal:
    """The principal a bearer token stands for, or :class:`Unauthenticated`."""
    [answer] = await authenticate_many(uow, [token])
    if isinstance(answer, Unauthenticated):
        raise answer
    return answer


async def authenticate_many(
    uow: UnitOfWorkFactory, tokens: Sequence[str]
) -> list[Principal | Unauthenticated]:
    """:func:`authenticate` for several tokens with one database read, one answer per token.

    The API checks the tokens of concurrent requests together (see
    :class:`~ringfence.services.coalescer.Coalescer`): each is still checked against the
    database after its request arrived, so a revoked token is refused from the next request on.
    """
    ids = [_token_id(token) for token in tokens]
    wanted = sorted({token_id for token_id in ids if token_id is not None})
    records: dict[str, TokenRecord] = {}
    if wanted:
        async with uow(read_only=True) as work:
            records = await work.tokens.get_many(wanted)
    answers = [
        _verify(token, records.get(token_id or ""))
        for token, token_id in zip(tokens, ids, strict=True)
    ]
    for token_id, answer in zip(ids, answers, strict=True):
        if token_id is not None and isinstance(answer, Principal):
            _known[token_id] = (records[token_id].secret_hash, replace(answer, confirmed=False))
            _known.move_to_end(token_id)
    while len(_known) > _KNOWN_AT_MOST:
        _known.popitem(last=False)
    return answers


def authenticate_known(token: str) -> Principal | None:
    """The principal of a token this process found valid before, without reading it again:
    not :attr:`~ringfence.domain.access.Principal.confirmed`, so the operation it is taken for
    confirms in its own transaction that the token is not revoked (:func:`confirm_token`, or
    the statement that decides the batch), and a revoked token is still refused from the
    next request on. None if this process does not know the token: :func:`authenticate` it."""
    token_id = _token_id(token)
    known = _known.get(token_id) if token_id is not None else None
    if known is None or not hmac.compare_digest(known[0], _digest(token)):
        return None
    return known[1]


def revoked(token_id: str | None) -> Unauthenticated:
    """The refusal of a token found revoked (or gone) when its operation confirmed it; this
    process forgets it, so its next request is refused before any work."""
    if token_id is not None:
        _known.pop(token_id, None)
    return Unauthenticated("invalid-token", _INVALID)


async def confirm_token(work: UnitOfWork, principal: Principal) -> None:
    """Refuse (401) a caller whose token, recognized without a read
    (:func:`authenticate_known`), is revoked: read in ``work``'s transaction, after the
    request arrived."""
    token_id = principal.token_id
    if principal.confirmed or token_id is None:
        return
    if not token_valid(await work.tokens.get_many([token_id]), token_id):
        raise revoked(token_id)


def _token_id(token: str) -> str | None:
    if not token.startswith(_PREFIX) or token.count("_") < 2 or len(token) > 200:
        return None
    return token[len(_PREFIX) :].split("_", 1)[0]


def _verify(token: str, record: TokenRecord | None) -> Principal | Unauthenticated:
    # Compare even when the id is unknown, so timing does not tell ids apart.
    expected = record.secret_hash if record is not None else _digest("")
    if not hmac.compare_digest(expected, _digest(token)) or record is None:
        return Unauthenticated("invalid-token", _INVALID)
    if record.revoked_at is not None:
        return Unauthenticated("invalid-token", _INVALID)
    return principal_of(record)


def principal_of(record: TokenRecord) -> Principal:
    """The principal a (valid) token record stands for."""
    return Principal(
        environment_id=record.environment_id,
        role=record.role,
        name=record.name,
        token_id=record.token_id,
        organizations=frozenset(record.organizations) if record.organizations else None,
        group_scope=record.group_scope,
    )
