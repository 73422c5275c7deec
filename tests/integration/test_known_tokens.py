"""Consumes by a token this process already knows: taken without a read of their own, refused
(401, nothing written) from the first request after the token was revoked anywhere.

The revocations here are made straight in the database, as another server process would make
them: this process is not told, so only the consume's own transaction can find them. On SQLite
and PostgreSQL; on PostgreSQL a batch of like consumes is decided in one statement (which
confirms the token itself) and a batch with a soft reservation in process.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest

from ringfence.services.ports import UnitOfWorkFactory
from tests.conftest import TokenFactory
from tests.integration.support import Api, Json, assert_problem, event, new_id

pytestmark = pytest.mark.asyncio

RED = {"siteId": "1", "locationId": "11", "colorId": "red"}
WEB = {"channel": "Web"}


def consume_body(operation_id: str | None = None, **extra: Any) -> Json:
    return {
        "id": operation_id or new_id("consume"),
        "organizationId": "usmf",
        "productId": "T-shirt",
        "dimensions": dict(RED),
        "groups": dict(WEB),
        "quantity": 1,
        "physicalMeasures": {"pos": {"outbound": "Addition"}},
        **extra,
    }


async def revoke_elsewhere(uow: UnitOfWorkFactory, environment_id: str, name: str) -> None:
    """Revoke a token as another process would: in the database, this process not told."""
    async with uow() as work:
        record = await work.tokens.get_by_name(environment_id, name)
        assert record is not None
        await work.tokens.revoke(record.token_id, datetime.now(UTC))
        await work.commit()


async def figures(planner: Api) -> tuple[Json, list[Json]]:
    """The path's figures and the environment's journal."""
    query = await planner.post(
        "/allocation/query",
        {"organizationId": "usmf", "productId": "T-shirt", "dimensions": RED, "groups": {}},
    )
    journal = await planner.get("/journal")
    assert query.status_code == journal.status_code == 200
    [path] = query.json()["allocations"]
    return path, journal.json()["entries"]


@pytest.fixture
async def setup(
    client: httpx.AsyncClient, environment_id: str, auth: TokenFactory
) -> tuple[Api, Api]:
    """10 units on hand, 5 allocated to Web; a planner, and a writer named ``doomed`` that
    this process knows (one consume answered)."""
    planner = Api(client, environment_id, await auth("planner", name="planner"))
    doomed = Api(client, environment_id, await auth("writer", name="doomed"))
    stocked = await planner.post("/onhand", event(quantities={"pos": {"inbound": 10}}))
    allocated = await planner.post(
        "/allocation/allocate",
        {**consume_body(new_id("plan")), "physicalMeasures": None, "quantity": 5},
    )
    assert stocked.status_code == allocated.status_code == 200, allocated.text
    assert (await doomed.post("/allocation/consume", consume_body())).status_code == 200
    return planner, doomed


async def test_a_known_token_revoked_elsewhere_is_refused_on_its_next_consume(
    setup: tuple[Api, Api], uow: UnitOfWorkFactory, environment_id: str
) -> None:
    planner, doomed = setup
    before = await figures(planner)

    await revoke_elsewhere(uow, environment_id, "doomed")
    refused = await doomed.post("/allocation/consume", consume_body("after-revocation"))

    assert_problem(refused, 401, "invalid-token")
    assert await figures(planner) == before
    # Refused again, now without deciding anything: this process forgot the token.
    assert_problem(await doomed.post("/allocation/consume", consume_body()), 401, "invalid-token")
    assert await figures(planner) == before


async def test_a_revoked_known_token_is_refused_when_its_consume_is_decided_in_process(
    setup: tuple[Api, Api], uow: UnitOfWorkFactory, environment_id: str
) -> None:
    """A consume into the reservation measure makes a soft reservation: never decided in one
    statement."""
    planner, doomed = setup
    before = await figures(planner)

    await revoke_elsewhere(uow, environment_id, "doomed")
    refused = await doomed.post(
        "/allocation/consume",
        consume_body(physicalMeasures={"@iv": {"@softreserved": "Addition"}}),
    )

    assert_problem(refused, 401, "invalid-token")
    assert await figures(planner) == before


@pytest.mark.parametrize(
    ("what", "body"),
    [
        ("a body that does not validate", {"content": b'{"id": "x", "quantity": -1}'}),
        ("a body that is not JSON", {"content": b"{not json"}),
        ("a dimension the configuration does not know", {"body": consume_body(dimensions={})}),
        ("no body", {"content": b""}),
    ],
)
async def test_a_revoked_known_token_is_refused_before_its_request_is(
    setup: tuple[Api, Api],
    uow: UnitOfWorkFactory,
    environment_id: str,
    what: str,
    body: dict[str, Any],
) -> None:
    _, doomed = setup
    await revoke_elsewhere(uow, environment_id, "doomed")

    refused = await doomed.post("/allocation/consume", **body)

    assert_problem(refused, 401, "invalid-token")


async def test_a_known_token_is_refused_on_another_environment_and_for_another_role(
    setup: tuple[Api, Api], auth: TokenFactory
) -> None:
    """Taken without a read only where it would be allowed: elsewhere, the read's answers."""
    planner, doomed = setup
    reader = Api(planner.client, planner.environment_id, await auth("reader", name="reader"))
    assert (await reader.get("/journal")).status_code == 200  # now known to this process

    other = await doomed.post("/allocation/consume", consume_body(), environment_id="elsewhere")
    read_only = await reader.post("/allocation/consume", consume_body())

    assert_problem(other, 403, "forbidden")
    assert_problem(read_only, 403, "insufficient-role")


async def test_concurrent_consumes_of_a_token_revoked_elsewhere_are_all_refused(
    setup: tuple[Api, Api], uow: UnitOfWorkFactory, environment_id: str
) -> None:
    """Batches of consumes by a known token confirm it; none is answered 200 once it is
    revoked, whatever batch it joined."""
    planner, doomed = setup
    before = await figures(planner)

    await revoke_elsewhere(uow, environment_id, "doomed")
    answers = await asyncio.gather(
        *(doomed.post("/allocation/consume", consume_body()) for _ in range(12))
    )

    assert [answer.status_code for answer in answers] == [401] * 12
    assert await figures(planner) == before


async def test_a_known_token_not_revoked_consumes_as_before(
    setup: tuple[Api, Api],
) -> None:
    planner, doomed = setup

    answers = await asyncio.gather(
        *(doomed.post("/allocation/consume", consume_body()) for _ in range(6))
    )

    assert sorted(answer.status_code for answer in answers) == [200] * 4 + [409] * 2
    path, _ = await figures(planner)
    assert (path["allocated"], path["consumed"]) == (0, 5)
