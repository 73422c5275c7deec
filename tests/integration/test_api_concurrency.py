"""Concurrent HTTP clients on one partition: nothing lost, nothing counted twice."""

from __future__ import annotations

import asyncio
from decimal import Decimal

import httpx
import pytest

from ringfence.app import create_app
from ringfence.bootstrap import Container
from tests.conftest import TokenFactory
from tests.integration.support import Api, event

pytestmark = pytest.mark.asyncio

CLIENTS = 16


async def test_concurrent_changes_to_one_partition_are_all_counted(api: Api) -> None:
    responses = await asyncio.gather(
        *(
            api.post("/onhand", event(f"c{index}", {"pos": {"inbound": "0.5"}}))
            for index in range(CLIENTS)
        )
    )

    assert [response.status_code for response in responses] == [200] * CLIENTS
    assert await api.measure("pos.inbound") == Decimal(CLIENTS) / 2
    assert len(await api.journal()) == CLIENTS


async def test_concurrent_retries_of_one_id_are_applied_once(api: Api) -> None:
    body = event("retried", {"pos": {"inbound": 3}})

    responses = await asyncio.gather(*(api.post("/onhand", body) for _ in range(CLIENTS)))

    assert [response.status_code for response in responses] == [200] * CLIENTS
    fresh = [r for r in responses if r.headers.get("Idempotent-Replayed") != "true"]
    assert len(fresh) == 1
    assert all(r.json() == fresh[0].json() for r in responses)
    assert await api.measure("pos.inbound") == 3
    assert [entry["id"] for entry in await api.journal()] == ["retried"]


async def test_concurrent_bulks_and_counts_keep_every_accepted_effect(api: Api) -> None:
    bulks = [
        api.post(
            "/onhand/bulk",
            [event(f"b{batch}-{index}", {"pos": {"outbound": 1}}) for index in range(8)],
        )
        for batch in range(4)
    ]
    count = api.post(
        "/setonhand/pos/bulk",
        [event("count", {"pos": {"inbound": 100}}, modifiedDateTimeUTC="2026-03-01T00:00:00Z")],
    )

    responses = await asyncio.gather(*bulks, count)

    assert [response.status_code for response in responses] == [200] * 5
    assert (await api.totals())["pos"] == {"inbound": 100, "outbound": 32}
    assert len(await api.journal()) == 33


@pytest.mark.parametrize("mode", ["caller", "partition", "off"])
async def test_every_coalescing_mode_counts_concurrent_changes_to_many_products_once(
    container: Container, environment_id: str, auth: TokenFactory, mode: str
) -> None:
    settings = container.settings.model_copy(update={"coalesce": mode})
    app = create_app(container=Container(settings, container.database, container.uow))
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://ringfence.test") as http:
        api = Api(http, environment_id, await auth("writer"))
        products = ["P-1", "P-2", "P-3"]
        bodies = [
            event(f"{mode}-{index}", {"pos": {"inbound": 1}}, product=products[index % 3])
            for index in range(CLIENTS * 3)
        ]
        # Every body twice, concurrently: the retry of each id is a replay, never a second add.
        responses = await asyncio.gather(*(api.post("/onhand", body) for body in bodies * 2))

        assert [response.status_code for response in responses] == [200] * len(bodies) * 2
        for product in products:
            assert await api.measure("pos.inbound", product=product) == CLIENTS
        assert len(await api.journal()) == len(bodies)
        forged = await api.post(
            "/onhand", event(f"{mode}-bad"), headers={"Authorization": "Bearer rf_x_y"}
        )
        assert forged.status_code == 401
