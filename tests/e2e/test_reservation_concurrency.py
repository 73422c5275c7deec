"""64 concurrent reservers against 50 available, over real HTTP, two server processes."""

from __future__ import annotations

import threading
from decimal import Decimal

import httpx
import pytest

from tests.e2e.conftest import Cli, start_server

pytestmark = pytest.mark.slow

RESERVERS = 64
AVAILABLE = 50
SCOPE = {"siteId": "1", "locationId": "11"}


def test_exactly_as_many_reservations_succeed_as_are_available(cli: Cli) -> None:
    token = cli.token("shop", "writer")
    server = start_server(cli, workers=2)
    headers = {"Authorization": f"Bearer {token}"}
    statuses: list[int] = []
    lock = threading.Lock()
    start = threading.Barrier(RESERVERS)

    def reserve(number: int) -> None:
        with httpx.Client(base_url=server.url, headers=headers, timeout=60) as http:
            start.wait()
            response = http.post(
                "/api/environment/shop/onhand/reserve",
                json={
                    "id": f"order-{number}",
                    "organizationId": "usmf",
                    "productId": "limited-edition",
                    "dimensions": {**SCOPE, "colorId": "gold"},
                    "quantity": 1,
                    "ifCheckAvailForReserv": True,
                },
            )
        with lock:
            statuses.append(response.status_code)

    try:
        with httpx.Client(base_url=server.url, headers=headers) as http:
            stocked = http.post(
                "/api/environment/shop/onhand",
                json={
                    "id": "receipt",
                    "organizationId": "usmf",
                    "productId": "limited-edition",
                    "dimensions": {**SCOPE, "colorId": "gold"},
                    "quantities": {"pos": {"inbound": AVAILABLE}},
                },
            )
            assert stocked.status_code == 200
            workers = [threading.Thread(target=reserve, args=(n,)) for n in range(RESERVERS)]
            for worker in workers:
                worker.start()
            for worker in workers:
                worker.join()
            [row] = http.post(
                "/api/environment/shop/onhand/indexquery",
                json={
                    "filters": {"organizationId": ["usmf"], "productId": ["limited-edition"]},
                    "returnNegative": True,
                },
            ).json()
            reservations = http.get(
                "/api/environment/shop/reservations", params={"open": "true", "limit": 1000}
            ).json()["reservations"]
    finally:
        server.stop()

    assert sorted(statuses) == [200] * AVAILABLE + [409] * (RESERVERS - AVAILABLE)
    assert row["quantities"]["@iv"]["@available_to_reserve"] == 0
    assert row["quantities"]["@iv"]["@softreserved"] == AVAILABLE
    assert sum(Decimal(str(r["remaining"])) for r in reservations) == AVAILABLE
    assert len({r["reservationId"] for r in reservations}) == AVAILABLE
