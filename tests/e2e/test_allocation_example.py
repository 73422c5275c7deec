"""Inventory Visibility's documented allocation example, over real HTTP.

Bike at site 1, location 11, red: allocate 10 to [Web, VIP, US], reallocate 2 to
[Web, VIP, EU], consume 3 with ``{"pos": {"outbound": "Addition"}}``; the query shows the
figures and an unchanged pool.
"""

from __future__ import annotations

from typing import Any

import httpx

from tests.e2e.conftest import Cli, Server

RED_BIKE = {"siteId": "1", "locationId": "11", "colorId": "red"}
US = {"channel": "Web", "customerGroup": "VIP", "region": "US"}
EU = {"channel": "Web", "customerGroup": "VIP", "region": "EU"}


def body(operation_id: str, **fields: Any) -> dict[str, Any]:
    return {
        "id": operation_id,
        "organizationId": "usmf",
        "productId": "Bike",
        "dimensions": RED_BIKE,
        **fields,
    }


def test_the_documented_allocation_example(cli: Cli, server: Server) -> None:
    planner = {"Authorization": f"Bearer {cli.token('bikes', 'planner')}"}
    with httpx.Client(base_url=f"{server.url}/api/environment/bikes", headers=planner) as http:
        stocked = http.post("/onhand", json=body("receipt", quantities={"pos": {"inbound": 50}}))
        allocated = http.post("/allocation/allocate", json=body("a1", targetGroups=US, quantity=10))
        moved = http.post(
            "/allocation/reallocate",
            json=body("r1", sourceGroups=US, targetGroups=EU, quantity=2),
        )
        consumed = http.post(
            "/allocation/consume",
            json=body(
                "c1",
                targetGroups=US,
                quantity=3,
                physicalMeasures={"pos": {"outbound": "Addition"}},
            ),
        )
        query = http.post(
            "/allocation/query",
            json={
                "organizationId": "usmf",
                "productId": "Bike",
                "dimensions": RED_BIKE,
                "groups": {"channel": "Web"},
            },
        )
        [row] = http.post(
            "/onhand/indexquery",
            json={
                "filters": {"organizationId": ["usmf"], "productId": ["Bike"]},
                "groupByValues": ["colorId"],
            },
        ).json()

    assert [r.status_code for r in (stocked, allocated, moved, consumed)] == [200] * 4
    assert consumed.json()["processingStatus"] == "success"
    assert query.status_code == 200
    answer = query.json()
    assert answer["availableToAllocate"] == 40  # 50 - 10, untouched by reallocate and consume
    assert answer["allocations"] == [
        {
            "groups": EU,
            "allocated": 2,
            "cumulativeAllocated": 2,
            "consumed": 0,
            "cumulativeConsumed": 0,
            "subtree": {"allocated": 2, "consumed": 0},
        },
        {
            "groups": US,
            "allocated": 5,
            "cumulativeAllocated": 10,
            "consumed": 3,
            "cumulativeConsumed": 3,
            "subtree": {"allocated": 5, "consumed": 3},
        },
    ]
    figures = row["quantities"]
    assert figures["pos"] == {"inbound": 50, "outbound": 3}
    assert figures["@iv"]["@allocated"] == 7
    assert figures["@iv"]["@consumed"] == 3
    assert figures["@iv"]["@cumulative_allocated"] == 12
    assert figures["@iv"]["@available_to_allocate"] == 40


def test_consuming_more_than_allocated_is_refused_and_changes_nothing(
    cli: Cli, server: Server
) -> None:
    planner = {"Authorization": f"Bearer {cli.token('bikes', 'planner')}"}
    with httpx.Client(base_url=f"{server.url}/api/environment/bikes", headers=planner) as http:
        http.post("/onhand", json=body("receipt", quantities={"pos": {"inbound": 5}}))
        http.post("/allocation/allocate", json=body("a1", groups=US, quantity=2))
        refused = http.post(
            "/allocation/consume",
            json=body(
                "c1", groups=US, quantity=3, physicalMeasures={"pos": {"outbound": "Addition"}}
            ),
        )
        answer = http.post(
            "/allocation/query",
            json={
                "organizationId": "usmf",
                "productId": "Bike",
                "dimensions": RED_BIKE,
                "groups": {},
            },
        ).json()

    assert refused.status_code == 409
    assert refused.json()["code"] == "insufficient-allocated"
    assert answer["allocations"][0]["allocated"] == 2
    assert answer["allocations"][0]["consumed"] == 0
    assert answer["availableToAllocate"] == 3
