"""Concurrent HTTP clients on one partition: nothing lost, nothing counted twice."""

from __future__ import annotations

import asyncio
from decimal import Decimal

import pytest

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
