"""On-hand API over HTTP (in process), on SQLite and PostgreSQL: happy and error paths."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.conftest import TokenFactory

pytestmark = pytest.mark.asyncio


def event(
    operation_id: str,
    quantities: dict[str, dict[str, Any]] | None = None,
    *,
    product: str = "T-shirt",
    dimensions: dict[str, str] | None = None,
    **extra: Any,
) -> dict[str, Any]:
    return {
        "id": operation_id,
        "organizationId": "usmf",
        "productId": product,
        "dimensions": dimensions or {"siteId": "1", "locationId": "11", "colorId": "red"},
        "quantities": quantities or {"pos": {"inbound": 1}},
        **extra,
    }


async def query(
    client: httpx.AsyncClient, environment_id: str, headers: dict[str, str], **body: Any
) -> list[dict[str, Any]]:
    body.setdefault("filters", {"organizationId": ["usmf"]})
    response = await client.post(
        f"/api/environment/{environment_id}/onhand/indexquery", json=body, headers=headers
    )
    assert response.status_code == 200, response.text
    rows: list[dict[str, Any]] = response.json()
    return rows


async def test_posted_change_is_visible_in_a_query_with_calculated_measures(
    client: httpx.AsyncClient, environment_id: str, auth: TokenFactory
) -> None:
    headers = await auth("writer")
    response = await client.post(
        f"/api/environment/{environment_id}/onhand",
        json=event("e1", {"pos": {"inbound": "10.5", "outbound": 2}}),
        headers=headers,
    )
    assert response.status_code == 200
    assert response.json() == {
        "id": "e1",
        "processingStatus": "success",
        "message": "",
        "statusCode": 200,
    }
    [row] = await query(client, environment_id, headers, groupByValues=["colorId"])
    assert row["productId"] == "T-shirt"
    assert row["dimensions"] == {"siteId": "1", "locationId": "11", "colorId": "red"}
    assert row["quantities"]["pos"] == {"inbound": 10.5, "outbound": 2}
    assert row["quantities"]["iv"] == {"onhand": 8.5}
    assert row["quantities"]["@iv"]["@available_to_allocate"] == 8.5
    assert row["quantities"]["fno"] == {"availphysical": 0, "ordered": 0, "onorder": 0}
