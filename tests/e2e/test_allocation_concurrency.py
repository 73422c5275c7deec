"""Concurrent consumers and allocators over real HTTP, two server processes: zero oversell."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from tests.e2e.conftest import Cli, start_server

pytestmark = pytest.mark.slow

STORE = {"siteId": "1", "locationId": "11"}
FLASH = {"channel": "Web", "customerGroup": "VIP"}


def race(
    count: int, send: Callable[[httpx.Client, int], httpx.Response], url: str, token: str
) -> list[int]:
    """``count`` clients released together, one request each; their status codes."""
    statuses: list[int] = []
    lock = threading.Lock()
    start = threading.Barrier(count)

    def client(number: int) -> None:
        with httpx.Client(
            base_url=url, headers={"Authorization": f"Bearer {token}"}, timeout=60
        ) as http:
            start.wait()
            response = send(http, number)
        with lock:
            statuses.append(response.status_code)

    workers = [threading.Thread(target=client, args=(n,)) for n in range(count)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    return sorted(statuses)


def body(operation_id: str, **fields: Any) -> dict[str, Any]:
    return {
        "id": operation_id,
        "organizationId": "usmf",
        "productId": "flash-item",
        "dimensions": STORE,
        **fields,
    }


def figures(http: httpx.Client) -> tuple[dict[str, Any], dict[str, Any]]:
    [row] = http.post(
        "/onhand/indexquery",
        json={
            "filters": {"organizationId": ["usmf"], "productId": ["flash-item"]},
            "returnNegative": True,
        },
    ).json()
    query = http.post(
        "/allocation/query",
        json={
            "organizationId": "usmf",
            "productId": "flash-item",
            "dimensions": STORE,
            "groups": {},
        },
    ).json()
    return row["quantities"], query


def test_64_consumers_of_one_against_an_allocation_of_40_sell_exactly_40(cli: Cli) -> None:
    token = cli.token("sale", "planner")
    server = start_server(cli, workers=2)
    api = f"{server.url}/api/environment/sale"
    try:
        with httpx.Client(base_url=api, headers={"Authorization": f"Bearer {token}"}) as http:
            http.post("/onhand", json=body("receipt", quantities={"pos": {"inbound": 100}}))
            assert (
                http.post(
                    "/allocation/allocate", json=body("ring-fence", groups=FLASH, quantity=40)
                ).status_code
                == 200
            )
            pool_before = figures(http)[0]["@iv"]["@available_to_allocate"]

            statuses = race(
                64,
                lambda client, n: client.post(
                    "/allocation/consume",
                    json=body(
                        f"order-{n}",
                        groups=FLASH,
                        quantity=1,
                        physicalMeasures={"pos": {"outbound": "Addition"}},
                    ),
                ),
                api,
                token,
            )
            quantities, query = figures(http)
    finally:
        server.stop()

    assert statuses == [200] * 40 + [409] * 24
    [path] = query["allocations"]
    assert (path["allocated"], path["consumed"], path["cumulativeConsumed"]) == (0, 40, 40)
    assert quantities["pos"]["outbound"] == 40
    assert quantities["@iv"]["@allocated"] == 0
    assert quantities["@iv"]["@consumed"] == 40
    assert quantities["@iv"]["@available_to_allocate"] == pool_before == 60


def test_50_allocators_on_a_pool_of_30_allocate_exactly_30(cli: Cli) -> None:
    token = cli.token("sale", "planner")
    server = start_server(cli, workers=2)
    api = f"{server.url}/api/environment/sale"
    try:
        with httpx.Client(base_url=api, headers={"Authorization": f"Bearer {token}"}) as http:
            http.post("/onhand", json=body("receipt", quantities={"pos": {"inbound": 30}}))
            statuses = race(
                50,
                lambda client, n: client.post(
                    "/allocation/allocate",
                    json=body(
                        f"plan-{n}",
                        groups={"channel": "Web", "customerGroup": f"group-{n % 7}"},
                        quantity=1,
                    ),
                ),
                api,
                token,
            )
            quantities, query = figures(http)
    finally:
        server.stop()

    assert statuses == [200] * 30 + [409] * 20
    assert quantities["@iv"]["@allocated"] == 30
    assert quantities["@iv"]["@available_to_allocate"] == 0
    assert sum(path["allocated"] for path in query["allocations"]) == 30


def test_consumers_of_three_products_on_two_processes_sell_exactly_each_allocation(
    cli: Cli,
) -> None:
    """Batches of one caller span products: each locks them in order, none oversells."""
    token = cli.token("sale", "planner")
    server = start_server(cli, workers=2)
    api = f"{server.url}/api/environment/sale"
    products = ["tee", "cap", "mug"]
    try:
        with httpx.Client(base_url=api, headers={"Authorization": f"Bearer {token}"}) as http:
            for product in products:
                receipt = {**body(f"in-{product}"), "productId": product}
                receipt["quantities"] = {"pos": {"inbound": 50}}
                assert http.post("/onhand", json=receipt).status_code == 200
                plan = {**body(f"plan-{product}", groups=FLASH, quantity=20)}
                plan["productId"] = product
                assert http.post("/allocation/allocate", json=plan).status_code == 200

            def consume(client: httpx.Client, n: int) -> httpx.Response:
                order = body(
                    f"order-{n}",
                    groups=FLASH,
                    quantity=1,
                    physicalMeasures={"pos": {"outbound": "Addition"}},
                )
                order["productId"] = products[n % 3]
                return client.post("/allocation/consume", json=order)

            statuses = race(96, consume, api, token)
            sold = {
                product: http.post(
                    "/allocation/query",
                    json={
                        "organizationId": "usmf",
                        "productId": product,
                        "dimensions": STORE,
                        "groups": {},
                    },
                ).json()["allocations"][0]["consumed"]
                for product in products
            }
    finally:
        server.stop()

    assert statuses == [200] * 60 + [409] * 36
    assert sold == {"tee": 20, "cap": 20, "mug": 20}
