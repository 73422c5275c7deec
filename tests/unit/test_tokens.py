"""Access tokens on the in-memory unit of work: issue, authenticate, revoke."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime

import pytest

from ringfence.domain.access import Principal, Role
from ringfence.domain.errors import Conflict, Invalid, NotFound, Unauthenticated
from ringfence.services import tokens
from ringfence.services.tokens import (
    authenticate,
    authenticate_known,
    authenticate_many,
    confirm_token,
    create_token,
    list_tokens,
    revoke_token,
)
from ringfence.storage.memory import MemoryUnitOfWorkFactory


async def test_authenticate_returns_the_principal_the_token_was_issued_for(
    uow: MemoryUnitOfWorkFactory, environment_id: str
) -> None:
    issued = await create_token(
        uow,
        Principal.operator(environment_id),
        Role.PLANNER,
        name="web-planner",
        organizations=["usmf"],
        groups=["channel=Web"],
    )

    principal = await authenticate(uow, issued.token)

    assert principal == Principal(
        environment_id=environment_id,
        role=Role.PLANNER,
        name="web-planner",
        token_id=issued.record.token_id,
        organizations=frozenset({"usmf"}),
        group_scope=(("channel", "Web"),),
    )


async def test_an_unscoped_token_authenticates_for_every_organization(
    uow: MemoryUnitOfWorkFactory, environment_id: str
) -> None:
    issued = await create_token(uow, Principal.operator(environment_id), Role.READER)

    principal = await authenticate(uow, issued.token)

    assert principal.organizations is None
    assert principal.group_scope == ()
    assert principal.role is Role.READER


async def test_create_token_stores_only_a_digest_of_the_token(
    uow: MemoryUnitOfWorkFactory, environment_id: str
) -> None:
    issued = await create_token(uow, Principal.operator(environment_id), Role.ADMIN, name="root")

    [stored] = await list_tokens(uow, Principal.operator(environment_id))
    assert issued.token.startswith("rf_")
    assert stored == issued.record
    for value in dataclasses.astuple(stored):
        assert issued.token not in str(value)
    secret = issued.token.split("_", 2)[2]
    assert secret not in repr(stored)


async def test_create_token_creates_the_environment_if_missing(
    uow: MemoryUnitOfWorkFactory,
) -> None:
    issued = await create_token(uow, Principal.operator("fresh-env"), Role.ADMIN)

    assert (await authenticate(uow, issued.token)).environment_id == "fresh-env"


async def test_create_token_refuses_an_unknown_environment_when_told_not_to_create_it(
    uow: MemoryUnitOfWorkFactory,
) -> None:
    with pytest.raises(NotFound):
        await create_token(uow, Principal.operator("nowhere"), Role.ADMIN, create_environment=False)


def _forged(token: str) -> str:
    """``token`` with the first character of its secret changed: the same id, another secret."""
    prefix, token_id, secret = token.split("_", 2)
    return f"{prefix}_{token_id}_{'A' if secret[0] != 'A' else 'B'}{secret[1:]}"


async def test_authenticate_refuses_a_wrong_secret(
    uow: MemoryUnitOfWorkFactory, environment_id: str
) -> None:
    issued = await create_token(uow, Principal.operator(environment_id), Role.ADMIN)
    forged = _forged(issued.token)

    with pytest.raises(Unauthenticated) as caught:
        await authenticate(uow, forged)

    assert caught.value.code == "invalid-token"


@pytest.mark.parametrize(
    "token",
    ["", "hello", "rf_", "rf_abc", "rf__", "Bearer rf_x_y", "xx_abc_def", "rf_" + "a_" * 150],
)
async def test_authenticate_refuses_a_malformed_token(
    uow: MemoryUnitOfWorkFactory, environment_id: str, token: str
) -> None:
    await create_token(uow, Principal.operator(environment_id), Role.ADMIN)

    with pytest.raises(Unauthenticated):
        await authenticate(uow, token)


async def test_authenticate_refuses_a_token_with_an_unknown_id(
    uow: MemoryUnitOfWorkFactory, environment_id: str
) -> None:
    issued = await create_token(uow, Principal.operator(environment_id), Role.ADMIN)
    _, token_id, secret = issued.token.split("_", 2)

    with pytest.raises(Unauthenticated):
        await authenticate(uow, f"rf_{'0' * len(token_id)}_{secret}")


async def test_authenticate_refuses_a_revoked_token(
    uow: MemoryUnitOfWorkFactory, environment_id: str
) -> None:
    issued = await create_token(uow, Principal.operator(environment_id), Role.ADMIN, name="leaked")
    kept = await create_token(uow, Principal.operator(environment_id), Role.ADMIN, name="kept")

    revoked = await revoke_token(uow, Principal.operator(environment_id), "leaked")

    assert revoked.revoked_at is not None
    with pytest.raises(Unauthenticated):
        await authenticate(uow, issued.token)
    assert (await authenticate(uow, kept.token)).name == "kept"


async def test_authenticate_many_answers_each_token_on_its_own_in_order(
    uow: MemoryUnitOfWorkFactory, environment_id: str
) -> None:
    operator = Principal.operator(environment_id)
    reader = await create_token(uow, operator, Role.READER, name="reader")
    leaked = await create_token(uow, operator, Role.ADMIN, name="leaked")
    await revoke_token(uow, operator, "leaked")
    token_id, secret = reader.token.removeprefix("rf_").split("_", 1)
    forged = f"rf_{token_id}_{'x' * len(secret)}"

    answers = await authenticate_many(
        uow, [reader.token, leaked.token, forged, "not-a-token", reader.token]
    )

    assert [getattr(answer, "name", None) for answer in answers] == [
        "reader",
        None,
        None,
        None,
        "reader",
    ]
    assert all(isinstance(answer, Unauthenticated) for answer in answers[1:4])


async def test_revoke_token_twice_keeps_the_first_revocation(
    uow: MemoryUnitOfWorkFactory, environment_id: str
) -> None:
    await create_token(uow, Principal.operator(environment_id), Role.ADMIN, name="leaked")

    first = await revoke_token(uow, Principal.operator(environment_id), "leaked")
    second = await revoke_token(uow, Principal.operator(environment_id), "leaked")

    assert second.revoked_at == first.revoked_at


async def test_revoke_token_of_an_unknown_name_is_not_found(
    uow: MemoryUnitOfWorkFactory, environment_id: str
) -> None:
    with pytest.raises(NotFound) as caught:
        await revoke_token(uow, Principal.operator(environment_id), "ghost")

    assert caught.value.code == "token-not-found"


async def test_create_token_refuses_a_name_already_taken_in_the_environment(
    uow: MemoryUnitOfWorkFactory, environment_id: str
) -> None:
    await create_token(uow, Principal.operator(environment_id), Role.ADMIN, name="ci")

    with pytest.raises(Conflict) as caught:
        await create_token(uow, Principal.operator(environment_id), Role.READER, name="ci")

    assert caught.value.code == "token-name-taken"
    assert len(await list_tokens(uow, Principal.operator(environment_id))) == 1


async def test_the_same_token_name_may_be_used_in_another_environment(
    uow: MemoryUnitOfWorkFactory, environment_id: str
) -> None:
    await create_token(uow, Principal.operator(environment_id), Role.ADMIN, name="ci")

    other = await create_token(
        uow, Principal.operator(f"{environment_id}-b"), Role.ADMIN, name="ci"
    )

    assert (await authenticate(uow, other.token)).environment_id == f"{environment_id}-b"


@pytest.mark.parametrize(
    ("options", "code"),
    [
        ({"name": "ci\ttoken"}, "invalid-identifier"),
        ({"organizations": ["us\nmf"]}, "invalid-identifier"),
        ({"groups": ["channel"]}, "invalid-group-scope"),
        ({"groups": ["=Web"]}, "invalid-group-scope"),
    ],
)
async def test_create_token_refuses_bad_names_and_scopes(
    uow: MemoryUnitOfWorkFactory, environment_id: str, options: dict[str, object], code: str
) -> None:
    with pytest.raises(Invalid) as caught:
        await create_token(uow, Principal.operator(environment_id), Role.ADMIN, **options)  # type: ignore[arg-type]

    assert caught.value.code == code


async def test_a_known_token_is_taken_without_a_read_only_with_its_own_secret(
    uow: MemoryUnitOfWorkFactory, environment_id: str
) -> None:
    issued = await create_token(uow, Principal.operator(environment_id), Role.WRITER)
    forged = _forged(issued.token)
    assert authenticate_known(issued.token) is None  # never read: not known

    read = await authenticate(uow, issued.token)
    known = authenticate_known(issued.token)

    assert read.confirmed
    assert known == dataclasses.replace(read, confirmed=False)
    assert authenticate_known(forged) is None  # the id alone is not enough
    await revoke_token(uow, Principal.operator(environment_id), issued.record.name)
    assert authenticate_known(issued.token) is None  # this process revoked it: forgotten


async def test_a_revoked_known_token_is_refused_by_its_confirmation_and_forgotten(
    uow: MemoryUnitOfWorkFactory, environment_id: str
) -> None:
    issued = await create_token(uow, Principal.operator(environment_id), Role.WRITER)
    await authenticate(uow, issued.token)
    known = authenticate_known(issued.token)
    assert known is not None
    async with uow() as work:  # revoked as another process would: this one is not told
        await work.tokens.revoke(issued.record.token_id, datetime.now(UTC))
        await work.commit()

    async with uow() as work:
        with pytest.raises(Unauthenticated) as caught:
            await confirm_token(work, known)

    assert caught.value.code == "invalid-token"
    assert authenticate_known(issued.token) is None


async def test_the_tokens_a_process_knows_are_bounded(
    uow: MemoryUnitOfWorkFactory, environment_id: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(tokens, "_KNOWN_AT_MOST", 3)
    issued = [
        await create_token(uow, Principal.operator(environment_id), Role.READER) for _ in range(5)
    ]
    for one in issued:
        await authenticate(uow, one.token)

    known = [authenticate_known(one.token) is not None for one in issued]

    assert known == [False, False, True, True, True]  # the least recently read forgotten
